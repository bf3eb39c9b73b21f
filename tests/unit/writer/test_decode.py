from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from logriver_common.decoding import find_forbidden_key
from logriver_common.event import EventLimits
from logriver_common.ids import record_event_id
from logriver_common.retention import RetentionPolicy
from logriver_writer.decode import Accepted, Decoder, Rejected, RejectReason
from tests.unit.writer.fakes import FakeRecord

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def decoder() -> Decoder:
    return Decoder(
        limits=EventLimits(max_message_bytes=1024),
        max_record_bytes=4096,
        retention=RetentionPolicy.model_validate({"default": "P7D", "levels": {"DEBUG": "P1D"}}),
    )


def event(**fields: object) -> bytes:
    return orjson.dumps({"service": "checkout", "message": "hello", **fields})


def test_a_valid_record_becomes_the_shared_document(decoder: Decoder) -> None:
    received = datetime(2026, 11, 21, 10, 0, 1, tzinfo=UTC)
    value = event(
        id="e-1",
        timestamp="2026-11-21T11:00:00+01:00",
        level="warn",
        metadata={"order": 7},
        received_at=received.isoformat(),
    )
    result = decoder.decode(FakeRecord(value, headers=[("traceparent", TRACEPARENT)]))
    assert isinstance(result, Accepted)
    doc = result.document
    assert doc["_id"] == "e-1"
    assert doc["level"] == "WARNING"
    assert doc["timestamp"] == datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    assert doc["expire_at"] == doc["timestamp"] + timedelta(days=7)
    assert doc["metadata"] == {"order": 7}
    assert result.received_at == received
    assert result.producer_span is not None
    assert format(result.producer_span.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_records_without_trace_headers_have_no_link(decoder: Decoder) -> None:
    result = decoder.decode(FakeRecord(event(), headers=[("x-other", b"1")]))
    assert isinstance(result, Accepted)
    assert result.producer_span is None


def test_an_event_without_id_gets_the_same_id_on_every_delivery(decoder: Decoder) -> None:
    record = FakeRecord(event(level="debug"), offset=17, partition=4)
    first = decoder.decode(record)
    again = decoder.decode(record)
    neighbour = decoder.decode(FakeRecord(event(level="debug"), offset=18, partition=4))
    assert isinstance(first, Accepted)
    assert isinstance(again, Accepted)
    assert isinstance(neighbour, Accepted)
    assert first.document["_id"] == again.document["_id"] != neighbour.document["_id"]
    assert first.document["expire_at"] - first.document["timestamp"] == timedelta(days=1)


def test_record_ids_are_uuid7_ordered_by_record_time() -> None:
    early = record_event_id("logs.v1", 0, 9, 1_000)
    late = record_event_id("logs.v1", 0, 1, 2_000)
    parsed = uuid.UUID(early)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert early < late
    assert record_event_id("other", 0, 9, 1_000) != early


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (None, RejectReason.NULL_VALUE, "no value"),
        (b"x" * 5000, RejectReason.TOO_LARGE, "5000 bytes"),
        (b'{"service":"a","message":"\xff\xfe"}', RejectReason.INVALID_UTF8, "not UTF-8"),
        (b"this is not json", RejectReason.NOT_JSON, "not JSON"),
        (b'{"service":"a","message":', RejectReason.NOT_JSON, "not JSON"),
        (b"[1, 2, 3]", RejectReason.NOT_OBJECT, "object"),
        (b'{"message":"no service"}', RejectReason.INVALID_EVENT, "service"),
        (b'{"service":"bad name!","message":"m"}', RejectReason.INVALID_EVENT, "service"),
        # The rollup totals' markers for "all services" and "the error levels".
        (b'{"service":"*","message":"m"}', RejectReason.INVALID_EVENT, "service"),
        (b'{"service":"!","message":"m"}', RejectReason.INVALID_EVENT, "service"),
        (b'{"service":"a","message":"m","level":"*"}', RejectReason.INVALID_EVENT, "level"),
        (b'{"service":"a","message":"m","level":"LOUD"}', RejectReason.INVALID_EVENT, "level"),
        (b'{"service":"a","message":"m","colour":1}', RejectReason.INVALID_EVENT, "colour"),
        (b'{"service":"a","message":"m","$set":{"x":1}}', RejectReason.FORBIDDEN_KEY, "$set"),
        (
            b'{"service":"a","message":"m","metadata":{"a":{"$where":"1"}}}',
            RejectReason.FORBIDDEN_KEY,
            "$where",
        ),
        (
            b'{"service":"a","message":"m","metadata":{"a.b":1}}',
            RejectReason.FORBIDDEN_KEY,
            "a.b",
        ),
    ],
)
def test_bad_records_are_rejected_with_a_reason(
    decoder: Decoder, value: bytes | None, reason: RejectReason, detail: str
) -> None:
    result = decoder.decode(FakeRecord(value, offset=3))
    assert isinstance(result, Rejected)
    assert result.reason is reason
    assert detail in result.detail
    assert result.record.offset == 3


def test_a_message_over_the_cap_is_an_invalid_event(decoder: Decoder) -> None:
    result = decoder.decode(FakeRecord(event(message="m" * 2000)))
    assert isinstance(result, Rejected)
    assert result.reason is RejectReason.INVALID_EVENT
    assert "message" in result.detail
    assert "1024" in result.detail


def test_a_future_timestamp_is_an_invalid_event(decoder: Decoder) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    result = decoder.decode(FakeRecord(event(timestamp=future)))
    assert isinstance(result, Rejected)
    assert result.reason is RejectReason.INVALID_EVENT
    assert "timestamp" in result.detail


def test_find_forbidden_key_looks_inside_lists() -> None:
    assert find_forbidden_key({"a": [{"ok": 1}, {"$gt": 2}]}) == "$gt"
    assert find_forbidden_key({"a": [1, {"b": {"c": None}}]}) is None
