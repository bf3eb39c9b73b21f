"""Item-by-item validation into Kafka records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logriver_common.decoding import parse_json
from logriver_common.event import EventLimits, LogEvent
from logriver_common.event_rule import Event
from logriver_common.retention import RetentionPolicy
from logriver_ingest.parsing import LineError, split_items
from logriver_ingest.redaction import Redactor
from logriver_ingest.settings import IngestSettings
from logriver_ingest.trace_context import TraceContext, fill_trace_context
from logriver_ingest.validation import ValidatedBatch, shortest_retention, validate_items
from tests.unit.event_strategies import events

SETTINGS = IngestSettings()
REDACTOR = Redactor(SETTINGS.redaction_rules, SETTINGS.masked_metadata_keys)
NOW = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def run(items: list[object], limits: EventLimits | None = None) -> ValidatedBatch:
    return validate_items(
        items,
        context=(limits or SETTINGS.event_limits()).context(),
        received_at=NOW,
        redactor=REDACTOR,
        retention=SETTINGS.retention,
    )


def test_valid_items_become_keyed_normalised_records() -> None:
    batch = run(
        [
            {"service": "checkout", "message": "ok", "level": "warn", "id": "client-1"},
            {"service": "billing", "message": "x", "context": {"a": 1}, "received_at": "1999-01"},
        ]
    )
    assert not batch.errors
    assert batch.ids[0] == "client-1"
    assert len(batch.ids[1]) == 36  # a UUIDv7 assigned by the gateway
    (key0, value0), (key1, value1) = batch.records
    assert (key0, key1) == (b"checkout", b"billing")
    first = orjson.loads(value0)
    assert first["level"] == "WARNING"
    assert first["received_at"] == "2026-01-15T10:00:00Z"
    second = LogEvent.model_validate_json(value1)
    assert second.metadata == {"a": 1}
    assert second.received_at == NOW  # the client's received_at is replaced
    assert second.id == batch.ids[1]


def test_bad_items_are_reported_by_index_and_not_published() -> None:
    batch = run(
        [
            {"service": "a", "message": "good"},
            LineError("the line is not valid JSON: x"),
            ["not", "an", "object"],
            {"message": "no service"},
            {"service": "a", "message": "m", "level": "loud"},
            {"service": "a", "message": "m", "metadata": {"$where": 1}},
            {"service": "a", "message": "m", "colour": "red"},
            {"service": "a", "message": "m", "timestamp": "2999-01-01T00:00:00Z"},
        ]
    )
    assert len(batch.records) == 1
    errors = {e["index"]: e["errors"] for e in batch.errors}
    assert sorted(errors) == [1, 2, 3, 4, 5, 6, 7]
    assert errors[1][0]["type"] == "json_invalid"
    assert errors[2][0]["type"] == "model_type"
    assert errors[3][0]["loc"] == ["service"]
    assert errors[4][0]["loc"] == ["level"]
    assert "unknown level" in errors[4][0]["msg"]
    assert errors[5][0]["loc"] == ["metadata"]
    assert errors[6][0]["loc"] == ["colour"]
    assert errors[7][0]["loc"] == ["timestamp"]
    # Errors never echo input back (it may be large or secret).
    assert all(set(err) == {"loc", "msg", "type"} for errs in errors.values() for err in errs)


def test_limits_come_from_settings() -> None:
    limits = EventLimits(max_message_bytes=100, max_future_skew=timedelta(0))
    batch = run([{"service": "a", "message": "x" * 101}], limits)
    assert batch.errors[0]["errors"][0]["loc"] == ["message"]


def test_redaction_happens_before_serialisation() -> None:
    batch = run([{"service": "a", "message": "password=hunter2", "metadata": {"token": "t0k"}}])
    value = batch.records[0][1]
    assert b"hunter2" not in value
    assert b"t0k" not in value
    assert batch.redactions == {"password": 1, "metadata_key": 1}


def test_events_that_retention_would_delete_at_once_are_refused_at_the_door() -> None:
    batch = run(
        [
            {"service": "a", "message": "fresh", "timestamp": "2026-01-15T09:00:00Z"},
            {"service": "a", "message": "1970", "timestamp": "1970-01-01T00:00:00Z"},
            {"service": "a", "message": "40 days", "timestamp": "2025-12-06T10:00:00Z"},
        ]
    )
    assert len(batch.records) == 1
    assert [e["index"] for e in batch.errors] == [1, 2]
    for error in batch.errors:
        (detail,) = error["errors"]
        assert detail["type"] == "timestamp_expired"
        assert detail["loc"] == ["timestamp"]
        assert "deleted at once" in detail["msg"]


def test_a_per_service_retention_decides_the_door() -> None:
    policy = RetentionPolicy.model_validate(
        {"default": "P1D", "services": {"audit": {"default": None}}}
    )
    batch = validate_items(
        [
            {"service": "audit", "message": "kept forever", "timestamp": "1999-01-01T00:00:00Z"},
            {"service": "web", "message": "too old", "timestamp": "2026-01-13T00:00:00Z"},
        ],
        context=SETTINGS.event_limits().context(),
        received_at=NOW,
        redactor=REDACTOR,
        retention=policy,
    )
    assert len(batch.records) == 1
    assert [e["index"] for e in batch.errors] == [1]


@pytest.mark.parametrize(
    ("item", "loc"),
    [
        ({"timestamp": "0001-01-01T00:00:00+01:00"}, ["timestamp"]),
        ({"timestamp": "9999-12-31T23:59:59-01:00"}, ["timestamp"]),
        ({"timestamp": "1969-12-31T23:59:59Z"}, ["timestamp"]),
        ({"metadata": {"n": 2**63}}, ["metadata"]),
        ({"metadata": {"n": 2**64 - 1}}, ["metadata"]),
        ({"metadata": {"n": -(2**63) - 1}}, ["metadata"]),
        ({"metadata": {"n": float("inf")}}, ["metadata"]),
        ({"metadata": {"n": [float("nan")]}}, ["metadata"]),
        ({"message": "a\x00b"}, ["message"]),
        ({"host": "h\x00"}, ["host"]),
        ({"metadata": {"k": "v\x00"}}, ["metadata"]),
    ],
)
def test_values_storage_cannot_hold_are_per_item_errors(
    item: dict[str, object], loc: list[str]
) -> None:
    batch = run([{"service": "a", "message": "good"}, {"service": "a", "message": "x", **item}])
    assert len(batch.records) == 1, batch.errors
    (error,) = batch.errors
    assert error["index"] == 1
    assert error["errors"][0]["loc"] == loc


def test_the_shortest_retention_shortcut_keeps_every_verdict() -> None:
    # DEBUG keeps 1 day, the rest 30: the shortcut may only skip events younger than 1 day.
    policy = RetentionPolicy.model_validate(
        {"default": "P30D", "levels": {"DEBUG": "P1D"}, "services": {"audit": {"default": "PT1H"}}}
    )
    assert shortest_retention(policy) == timedelta(hours=1)
    assert shortest_retention(RetentionPolicy.model_validate({"default": None})) is None
    cases = [
        ({"service": "web", "level": "debug"}, timedelta(days=1), False),  # exactly at the edge
        ({"service": "web", "level": "debug"}, timedelta(days=1) - timedelta(seconds=1), True),
        ({"service": "web", "level": "info"}, timedelta(days=2), True),
        ({"service": "audit", "level": "info"}, timedelta(hours=1), False),
        ({"service": "audit", "level": "info"}, timedelta(minutes=59), True),
        ({"service": "web", "level": "info"}, timedelta(days=30), False),
    ]
    for fields, age, kept in cases:
        stamp = (NOW - age).isoformat()
        batch = validate_items(
            [{"message": "m", "timestamp": stamp, **fields}],
            context=SETTINGS.event_limits().context(),
            received_at=NOW,
            redactor=REDACTOR,
            retention=policy,
        )
        assert (len(batch.records) == 1) is kept, (fields, age, batch.errors)
    forever = RetentionPolicy.model_validate({"default": None})
    batch = validate_items(
        [{"service": "a", "message": "m", "timestamp": "1971-01-01T00:00:00Z"}],
        context=SETTINGS.event_limits().context(),
        received_at=NOW,
        redactor=REDACTOR,
        retention=forever,
    )
    assert len(batch.records) == 1


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events, min_size=1, max_size=4), st.booleans())
def test_the_typed_fast_path_gives_the_item_by_item_records_and_errors(
    items: list[dict[str, Any]], with_trace: bool
) -> None:
    """A body whose items all decode as events skips the dict per item; same verdicts."""
    for index, item in enumerate(items):
        if item.get("id") is None:  # the door would make one up, differently each time
            item["id"] = f"fixed-{index}"
    body = json.dumps(items).encode()
    fast = split_items(body, ndjson=False, max_events=100)
    slow = parse_json(body)
    trace = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    fill_trace_context(fast, trace if with_trace else None)
    fill_trace_context(slow, trace if with_trace else None)
    typed, by_item = run(fast), run(slow)
    assert typed.errors == by_item.errors
    assert typed.records == by_item.records


def test_a_well_typed_array_takes_the_fast_path_and_a_bad_item_does_not() -> None:
    good = b' [{"service": "api", "message": "a"}, {"service": "api", "message": "b"}]'
    assert all(isinstance(item, Event) for item in split_items(good, ndjson=False, max_events=9))
    bad = b'[{"service": "api", "message": "a"}, {"service": 1, "message": "b"}]'
    assert all(isinstance(item, dict) for item in split_items(bad, ndjson=False, max_events=9))
    batch = run(split_items(bad, ndjson=False, max_events=9))
    assert len(batch.records) == 1
    assert [error["index"] for error in batch.errors] == [1]
