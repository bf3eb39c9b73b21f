"""Records and subscribers for stream unit tests (no Kafka, no network)."""

from __future__ import annotations

from typing import Any

import orjson

from logriver_stream.filters import Filter, FilterSpec, RegexLimits
from logriver_stream.records import StreamRecord, parse_record
from logriver_stream.settings import OverflowPolicy
from logriver_stream.subscriber import Subscriber

LIMITS = RegexLimits(max_length=256, timeout_s=0.02)


def record(partition: int, offset: int, **fields: Any) -> StreamRecord:
    event: dict[str, Any] = {"service": "api", "message": f"m{offset}", "level": "INFO"}
    event.update(fields)
    return parse_record(partition, offset, orjson.dumps(event))


def make_filter(**spec: Any) -> Filter:
    return Filter(FilterSpec.model_validate(spec), LIMITS)


def subscriber(
    queue_size: int = 100, overflow: OverflowPolicy = OverflowPolicy.SKIP, **spec: Any
) -> Subscriber:
    return Subscriber(
        filter=make_filter(**spec),
        key_id="k",
        transport="sse",
        queue_size=queue_size,
        overflow=overflow,
    )
