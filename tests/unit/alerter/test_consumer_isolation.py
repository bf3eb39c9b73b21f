"""One record cannot stop the alerter: refused records are skipped, failing ones dead-lettered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import orjson

from logriver_alerter.consumer import AlertConsumer
from logriver_common.consumer_kit.dead_letters import DeadLetterQueue
from logriver_common.consumer_kit.fake import FakeConsumer, FakeProducer
from logriver_common.event import LogEvent

NOW = datetime.now(UTC)


class CountingEvaluator:
    """Counts like the real one, and fails on one message as a bug would."""

    def __init__(self) -> None:
        self.counted: list[str] = []
        self.lagging: dict[int, datetime] = {}

    def ingest(self, partition: int, event: LogEvent, now: datetime) -> bool:
        if event.message == "boom":
            raise KeyError("a bug in counting")
        self.counted.append(event.message)
        return True


def runner(evaluator: CountingEvaluator, producer: FakeProducer) -> AlertConsumer:
    return AlertConsumer(
        cast(Any, FakeConsumer()),
        cast(Any, evaluator),
        cast(Any, None),
        cast(Any, None),
        topic="logs.v1",
        group_id="alerter",
        commit_interval_s=1.0,
        dlq=DeadLetterQueue(producer, "logs.v1.dlq"),
    )


def value(message: str, **fields: object) -> bytes:
    return orjson.dumps({"service": "api", "message": message, "level": "error", **fields})


async def test_poison_records_never_stop_counting() -> None:
    evaluator, producer = CountingEvaluator(), FakeProducer()
    alerts = runner(evaluator, producer)
    kafka = FakeConsumer()
    records = kafka.add(
        "logs.v1",
        0,
        value("before"),
        value("year one", timestamp="0001-01-01T00:00:00+01:00"),
        value("big int", metadata={"n": 2**64 - 1}),
        b'{"service":"a","message":"deep","metadata":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        b"\xff not utf-8",
        None,
        value("boom"),
        value("after"),
    )

    failed = alerts.count(0, cast(Any, records), NOW)
    await alerts.dead_letter(failed)

    assert evaluator.counted == ["before", "after"]
    assert [f.record.offset for f in failed] == [6]
    assert [topic for topic, *_ in producer.sent] == ["logs.v1.dlq"]
    assert alerts.pending == {0: 8}
