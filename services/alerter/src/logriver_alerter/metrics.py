"""Prometheus metrics of the alerter (served on /metrics by the shared health router)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "logriver_alerter_events_total",
    "Kafka records read by the alerter, by outcome (counted, late, duplicate, invalid).",
    ["outcome"],
)
EVALUATIONS = Counter(
    "logriver_alerter_evaluations_total",
    "Rule evaluations, one per (rule, service) per tick.",
)
TRANSITIONS = Counter(
    "logriver_alerter_transitions_total",
    "Alert state transitions this instance won in PostgreSQL.",
    ["to"],
)
FIRING = Gauge(
    "logriver_alerter_alerts_firing",
    "Alerts firing for the services on this instance's partitions.",
)
NOTIFICATIONS = Counter(
    "logriver_alerter_notifications_total",
    "Notification delivery attempts by channel type, channel and outcome.",
    ["channel_type", "channel", "outcome"],
)
QUEUE_OVERFLOW = Counter(
    "logriver_alerter_delivery_overflow_total",
    "Notifications left in the outbox for later because a channel's lane was full.",
)
EVALUATION_LAG = Gauge(
    "logriver_alerter_evaluation_lag_seconds",
    "Age of the newest event counted (now - received_at), across this instance's partitions.",
)
TICK_SECONDS = Histogram(
    "logriver_alerter_tick_seconds",
    "Time one evaluation tick takes (all rules over all owned services).",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
REBUILD_SECONDS = Histogram(
    "logriver_alerter_rebuild_seconds",
    "Time to rebuild window and alert state after a partition assignment.",
)
