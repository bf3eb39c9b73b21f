"""Prometheus metrics of the stream service (exposed on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SUBSCRIBERS = Gauge(
    "logriver_stream_subscribers", "Connected live-tail subscribers.", ["transport"]
)
DELIVERED = Counter(
    "logriver_stream_events_delivered_total", "Events written to subscribers.", ["transport"]
)
DROPPED = Counter(
    "logriver_stream_events_dropped_total",
    "Events skipped because a subscriber's queue was full.",
    ["transport"],
)
LAG = Histogram(
    "logriver_stream_subscriber_lag_events",
    "Per-client lag: events queued for a subscriber when its writer drained the queue.",
    ["transport"],
    buckets=(0, 1, 10, 50, 100, 500, 1_000, 5_000, 20_000),
)
LATENCY = Histogram(
    "logriver_stream_delivery_latency_seconds",
    "Ingest (received_at) to delivery (written to the client's connection).",
    ["transport"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CONSUMED = Counter("logriver_stream_records_consumed_total", "Records read by the live source.")
BAD_RECORDS = Counter(
    "logriver_stream_bad_records_total", "Records skipped as undeliverable.", ["reason"]
)
REPLAYED = Counter(
    "logriver_stream_events_replayed_total", "Events delivered from a resume or since replay."
)
REJECTED = Counter(
    "logriver_stream_subscriptions_rejected_total",
    "Subscriptions refused (auth, filters, resume ids, limits).",
    ["reason"],
)
CLOSED = Counter(
    "logriver_stream_subscribers_closed_total",
    "Subscriptions ended by the server, by reason.",
    ["reason"],
)
BUDGET_SKIPPED = Counter(
    "logriver_stream_regex_budget_skipped_total",
    "Events a subscriber skipped because its API key had spent its regex budget.",
)
KEY_CHECKS = Counter(
    "logriver_stream_key_checks_total",
    "Rechecks of the API keys of open streams, by outcome.",
    ["outcome"],
)
