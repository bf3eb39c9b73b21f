"""Records and subscribers for stream unit tests (no Kafka, no network)."""

from __future__ import annotations

from typing import Any

import orjson

from logriver_stream.budget import RegexBudget
from logriver_stream.filters import Filter, FilterSpec, RegexCompiler, RegexLimits
from logriver_stream.records import StreamRecord, parse_record
from logriver_stream.settings import OverflowPolicy
from logriver_stream.subscriber import Subscriber

LIMITS = RegexLimits(max_length=256, max_program_size=1_000, max_mem=1 << 20)
COMPILER = RegexCompiler(LIMITS)


def record(partition: int, offset: int, **fields: Any) -> StreamRecord:
    event: dict[str, Any] = {"service": "api", "message": f"m{offset}", "level": "INFO"}
    event.update(fields)
    return parse_record(partition, offset, orjson.dumps(event))


def make_filter(**spec: Any) -> Filter:
    parsed = FilterSpec.model_validate(spec)
    regex = COMPILER.compile(parsed.regex) if parsed.regex is not None else None
    return Filter(parsed, regex)


def generous_budget() -> RegexBudget:
    """A budget no unit test reaches unless it means to."""
    return RegexBudget(per_window_s=3600.0, window_s=3600.0)


class ManualClock:
    """A clock that moves only when told: deterministic budgets without timing anything."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CostlyFilter(Filter):
    """A real filter whose regex match also advances ``clock`` by ``cost`` seconds.

    Stands in for a pattern that is expensive on the event loop (such as
    ``a[ab]{300}c`` on a 32 KiB message, tens of ms under RE2).
    """

    def __init__(self, filter_: Filter, clock: ManualClock, cost: float) -> None:
        super().__init__(filter_.spec, filter_.regex)
        self.clock = clock
        self.cost = cost
        self.runs = 0

    def matches_regex(self, record: StreamRecord) -> bool:
        self.clock.now += self.cost
        self.runs += 1
        return super().matches_regex(record)


def subscriber(
    queue_size: int = 100,
    overflow: OverflowPolicy = OverflowPolicy.SKIP,
    key_id: str = "k",
    **spec: Any,
) -> Subscriber:
    return Subscriber(
        filter=make_filter(**spec),
        key_id=key_id,
        transport="sse",
        queue_size=queue_size,
        overflow=overflow,
    )
