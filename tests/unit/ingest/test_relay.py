"""The relay loop, driven by the consumer kit's fakes (no broker)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from logriver_common.consumer_kit.backoff import Backoff
from logriver_common.consumer_kit.dead_letters import REASON_HEADER, SOURCE_OFFSET_HEADER
from logriver_common.consumer_kit.fake import FakeConsumer, FakeProducer, FakeRecord
from logriver_common.decoding import decode_event
from logriver_common.event import LogEvent
from logriver_common.event_rule import Event
from logriver_ingest import relay as relay_module
from logriver_ingest.relay import Relay, admit
from logriver_ingest.relay_app import door_from
from logriver_ingest.settings import IngestSettings

RAW, MAIN, DLQ = "raw", "main", "dlq"
DOOR = door_from(IngestSettings())


def make_relay(consumer: FakeConsumer, producer: FakeProducer) -> Relay:
    return Relay(
        consumer=consumer,
        producer=producer,
        door=DOOR,
        raw_topic=RAW,
        topic=MAIN,
        dlq_topic=DLQ,
        backoff=lambda: Backoff(0.001, 0.002),
    )


def event(**fields: object) -> bytes:
    return orjson.dumps({"service": "checkout", "message": "hello", **fields})


def dlq_reasons(producer: FakeProducer) -> list[str]:
    return [
        dict(headers)[REASON_HEADER].decode()
        for topic, _, _, headers in producer.sent
        if topic == DLQ
    ]


async def test_valid_records_are_published_redacted_with_stable_ids() -> None:
    consumer, producer = FakeConsumer(), FakeProducer()
    consumer.add(RAW, 0, event(message="login password=hunter2 ok", metadata={"token": "abc"}))
    consumer.add(RAW, 1, event(id="client-1"))
    relay = make_relay(consumer, producer)

    await relay.step()

    published = [LogEvent.model_validate_json(v or b"") for v in producer.values(MAIN)]
    assert len(published) == 2
    redacted = next(e for e in published if e.id != "client-1")
    assert "hunter2" not in redacted.message
    assert redacted.metadata == {"token": "[REDACTED]"}
    assert redacted.received_at is not None
    # Every record the relay publishes decodes with the consumers' canonical decoder.
    assert all(isinstance(decode_event(v), Event) for v in producer.values(MAIN))
    assert consumer.commits == [{TopicPartition(RAW, 0): 1, TopicPartition(RAW, 1): 1}]

    # Redelivered after a crash: the same ids again, so the writer stores them once.
    again = FakeProducer()
    replay = FakeConsumer(records=consumer.records)
    await make_relay(replay, again).step()
    assert sorted(LogEvent.model_validate_json(v or b"").id for v in again.values(MAIN)) == sorted(
        e.id for e in published
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "null_value"),
        (b"\xff\xfe", "not_json"),
        (b"{not json", "not_json"),
        (b"[1, 2]", "not_object"),
        (b"x" * (300 * 1024), "too_large"),
        (event(metadata={"n": 2**63}), "invalid_event"),
        (event(timestamp="0001-01-01T00:00:00+01:00"), "invalid_event"),
        (event(timestamp="1969-12-31T23:59:59Z"), "invalid_event"),
        (event(timestamp="1970-01-01T00:00:00Z"), "expired"),
        (event(timestamp="2001-01-01T00:00:00Z"), "expired"),
        (event(metadata={"$where": "1"}), "invalid_event"),
        (
            b'{"service":"a","message":"x","metadata":' + b"[" * 5000 + b"]" * 5000 + b"}",
            "not_json",
        ),
    ],
)
async def test_bad_records_go_to_the_dlq_and_the_good_ones_after_them_still_flow(
    value: bytes | None, reason: str
) -> None:
    consumer, producer = FakeConsumer(), FakeProducer()
    consumer.add(RAW, 0, value, event(message="after the poison"))
    await make_relay(consumer, producer).step()

    assert dlq_reasons(producer) == [reason]
    (good,) = producer.values(MAIN)
    assert LogEvent.model_validate_json(good or b"").message == "after the poison"
    dead = next(h for t, _, _, h in producer.sent if t == DLQ)
    assert dict(dead)[SOURCE_OFFSET_HEADER] == b"0"
    assert consumer.commits == [{TopicPartition(RAW, 0): 2}]


async def test_a_record_that_breaks_the_door_is_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    real_admit = relay_module.admit

    def flaky(door: object, record: FakeRecord, now: object) -> object:
        if record.offset == 0:
            raise RuntimeError("a bug nobody foresaw")
        return real_admit(door, record, now)  # type: ignore[arg-type]

    monkeypatch.setattr(relay_module, "admit", flaky)
    consumer, producer = FakeConsumer(), FakeProducer()
    consumer.add(RAW, 0, event(message="first"), event(message="second"))
    await make_relay(consumer, producer).step()
    assert dlq_reasons(producer) == ["handler_error"]
    assert len(producer.values(MAIN)) == 1


async def test_broker_errors_are_retried_not_dead_lettered_and_commit_waits() -> None:
    consumer = FakeConsumer()
    producer = FakeProducer(fail_next=2, error=KafkaConnectionError)
    consumer.add(RAW, 0, event())
    await make_relay(consumer, producer).step()
    assert len(producer.values(MAIN)) == 1
    assert dlq_reasons(producer) == []
    assert consumer.commits == [{TopicPartition(RAW, 0): 1}]


def test_only_trace_context_crosses_the_boundary() -> None:
    record = FakeRecord(RAW, 0, 0, event(), headers=[("x-evil", b"1")])
    outcome = admit(DOOR, record, datetime.now(UTC))
    assert isinstance(outcome, relay_module.Admitted)
    assert {"traceparent", "tracestate"} == relay_module.FORWARDED_HEADERS
