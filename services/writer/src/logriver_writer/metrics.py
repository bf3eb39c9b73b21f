"""The writer's Prometheus metrics (served on ``/metrics`` by the shared health router)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_WRITTEN = Counter(
    "logriver_writer_events_written_total", "Events inserted into MongoDB (w=majority acked)."
)
DUPLICATES_SKIPPED = Counter(
    "logriver_writer_duplicates_skipped_total",
    "Events already stored (duplicate _id, e.g. a redelivery after a crash), counted as done.",
)
DLQ_RECORDS = Counter(
    "logriver_writer_dlq_records_total", "Records sent to the dead-letter topic.", ["reason"]
)
WRITE_RETRIES = Counter(
    "logriver_writer_write_retries_total",
    "Retried attempts after a transient failure, by what failed.",
    ["target"],
)
COMMIT_FAILURES = Counter(
    "logriver_writer_commit_failures_total",
    "Offset commits that failed (retried with the next commit; redelivery is deduplicated).",
)
BATCH_SIZE = Histogram(
    "logriver_writer_batch_size",
    "Records per processed batch (stored and dead-lettered).",
    buckets=(1, 10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000),
)
WRITE_SECONDS = Histogram(
    "logriver_writer_write_seconds",
    "Time to store one batch in MongoDB, retries included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INGEST_TO_STORED_SECONDS = Histogram(
    "logriver_writer_ingest_to_stored_seconds",
    "From the gateway's received_at to the write being acknowledged by a majority.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60),
)
CONSUMER_LAG = Gauge(
    "logriver_writer_consumer_lag",
    "Records between the broker's end offset and the writer's committed offset.",
    ["topic", "partition"],
)
PAUSED = Gauge(
    "logriver_writer_paused",
    "1 while the consumer has paused its partitions (storage failing or a batch is waiting).",
)
