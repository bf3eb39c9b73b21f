"""Prometheus metrics of the gateway (module-level: one registry per process).

With ``LOGRIVER_INGEST_WORKERS`` > 1 each worker writes its values to files that
``/metrics`` sums (prometheus_client's multiprocess mode, set up by
``logriver_common.workers.run_workers``): counters and histograms add up, and the
in-flight gauges say how they are summed (``livesum``: over the running workers).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_ACCEPTED = Counter(
    "logriver_ingest_events_accepted_total", "Events acknowledged by Kafka and answered 2xx."
)
EVENTS_REJECTED = Counter(
    "logriver_ingest_events_rejected_total",
    "Events (or, when a request fails before it is parsed, requests) rejected, by reason.",
    ["reason"],
)
REQUESTS = Counter("logriver_ingest_requests_total", "Ingest requests by status.", ["status"])
RATE_LIMITED = Counter("logriver_ingest_rate_limited_total", "Requests answered 429.")
UNAVAILABLE = Counter(
    "logriver_ingest_unavailable_total", "Requests answered 503, by cause.", ["cause"]
)
PUBLISH_SECONDS = Histogram(
    "logriver_ingest_publish_seconds",
    "Time from handing a request's events to the producer until Kafka acked them all.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REQUESTS_IN_FLIGHT = Gauge(
    "logriver_ingest_requests_in_flight",
    "Ingest requests being handled.",
    multiprocess_mode="livesum",
)
EVENTS_IN_FLIGHT = Gauge(
    "logriver_ingest_events_in_flight",
    "Events handed to the producer and not yet acked.",
    multiprocess_mode="livesum",
)
REDACTIONS = Counter(
    "logriver_ingest_redactions_total", "Secrets masked before publishing, by rule.", ["rule"]
)

# The relay (its own process: raw topic -> logs.v1).
RELAYED = Counter("logriver_relay_events_total", "Raw-topic events admitted into logs.v1.")
RELAY_REJECTED = Counter(
    "logriver_relay_rejected_total", "Raw-topic records dead-lettered, by reason.", ["reason"]
)
RELAY_RETRIES = Counter(
    "logriver_relay_retries_total", "Kafka publishes retried after a broker error."
)
OTLP_REQUESTS = Counter(
    "logriver_ingest_otlp_requests_total",
    "OTLP export requests by transport (http_protobuf, http_json, grpc) and status "
    "(HTTP status, or the gRPC status code's name).",
    ["transport", "status"],
)
