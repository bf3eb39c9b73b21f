"""The stored document takes its fields from the event rule, not from a list of its own."""

from __future__ import annotations

from datetime import UTC, datetime

from logriver_common.documents import OPTIONAL_FIELDS, event_to_document
from logriver_common.event import LogEvent
from logriver_common.event_rule import Event, decode_json


def test_every_field_of_the_rule_is_stored_except_the_input_alias() -> None:
    stored = {"_id", "timestamp", "level", "service", "message", *OPTIONAL_FIELDS}
    assert stored == {"_id", *Event.__struct_fields__} - {"id", "context"}
    assert set(OPTIONAL_FIELDS) <= set(LogEvent.model_fields)


def test_a_full_event_keeps_every_field() -> None:
    event = decode_json(
        b'{"id":"e-1","timestamp":"2026-01-01T00:00:00Z","level":"warn","service":"api",'
        b'"message":"m","trace_id":"' + b"a" * 32 + b'","span_id":"' + b"b" * 16 + b'",'
        b'"host":"h","env":"prod","metadata":{"k":1},"received_at":"2026-01-01T00:00:01Z"}'
    )
    doc = event_to_document(event, None)
    assert doc == {
        "_id": "e-1",
        "timestamp": datetime(2026, 1, 1, tzinfo=UTC),
        "level": "WARNING",
        "service": "api",
        "message": "m",
        "trace_id": "a" * 32,
        "span_id": "b" * 16,
        "host": "h",
        "env": "prod",
        "metadata": {"k": 1},
        "received_at": datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
    }


def test_context_is_folded_into_metadata_not_stored() -> None:
    event = decode_json(b'{"service":"api","message":"m","context":{"user":"u1"}}')
    doc = event_to_document(event, None)
    assert "context" not in doc
    assert doc["metadata"] == {"user": "u1"}
