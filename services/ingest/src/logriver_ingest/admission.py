"""The steps every ingest path shares once it has items: rate limit → admit → publish.

``POST /v1/logs`` (JSON, NDJSON) and OTLP (HTTP and gRPC) differ in how they read
a request and how they answer; between those, they go through these two calls,
so the same limits, rule, redaction, metrics and acks apply to all of them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from logriver_common.event import utcnow
from logriver_common.telemetry import inject_kafka_headers
from logriver_common.web.errors import ApiError
from logriver_ingest import metrics
from logriver_ingest.publisher import Unavailable
from logriver_ingest.validation import ValidatedBatch, validate_items

if TYPE_CHECKING:
    from logriver_ingest.routes import Gateway


async def take_rate(gateway: Gateway, key_id: str, count: int, noun: str = "events") -> None:
    """Charge ``count`` to the key's token bucket, or answer 429 with Retry-After."""
    if gateway.rate_limiter is None:
        return
    decision = await gateway.rate_limiter.take(key_id, count)
    if decision.allowed:
        return
    metrics.RATE_LIMITED.inc()
    metrics.EVENTS_REJECTED.labels("rate_limited").inc(count)
    raise ApiError(
        429,
        "rate_limited",
        f"this API key is over its rate limit; {count} {noun} need "
        f"{decision.retry_after_s:.2f}s more of refill",
        headers={"Retry-After": str(max(1, math.ceil(decision.retry_after_s)))},
    )


async def admit_and_publish(gateway: Gateway, items: list[Any]) -> ValidatedBatch:
    """Admit each item through the door and publish what passed, acked by Kafka (acks=all).

    Returns the batch (its ``errors`` name each refused item); raises 503 with
    Retry-After when Kafka cannot ack in time. Nothing is published when no item passed.
    """
    batch = validate_items(
        items,
        context=gateway.validation_context,
        received_at=utcnow(),
        redactor=gateway.redactor,
        retention=gateway.retention,
    )
    if batch.errors:
        metrics.EVENTS_REJECTED.labels("validation_failed").inc(len(batch.errors))
    for rule, count in batch.redactions.items():
        metrics.REDACTIONS.labels(rule).inc(count)
    if not batch.records:
        return batch
    try:
        await gateway.publisher.publish(batch.records, inject_kafka_headers())
    except Unavailable as exc:
        metrics.UNAVAILABLE.labels(exc.cause).inc()
        metrics.EVENTS_REJECTED.labels("unavailable").inc(len(batch.records))
        raise ApiError(
            503,
            "unavailable",
            exc.detail,
            headers={"Retry-After": str(gateway.unavailable_retry_after_s)},
        ) from None
    metrics.EVENTS_ACCEPTED.inc(len(batch.records))
    return batch
