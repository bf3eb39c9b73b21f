"""The event rule (msgspec, every hop) and ``LogEvent`` (pydantic, the documented schema)
give the same verdict and the same normalised event for any object a client can send."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from logriver_common.event import LogEvent
from logriver_common.event_rule import EventInvalid, admit_object, decode_json, encode
from tests.unit.event_strategies import NOW, events


def pydantic_verdict(item: dict[str, Any]) -> dict[str, Any] | None:
    try:
        event = LogEvent.model_validate(item)
    except ValidationError:
        return None
    return dict(orjson.loads(event.to_json()))


def rule_verdict(item: dict[str, Any]) -> dict[str, Any] | None:
    try:
        event = admit_object(item, now=datetime.now(UTC))
    except EventInvalid:
        return None
    return dict(orjson.loads(encode(event)))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_the_rule_and_the_documented_model_agree(item: dict[str, Any]) -> None:
    item.setdefault("id", "fixed-id")
    item.setdefault("timestamp", NOW.isoformat())
    expected = pydantic_verdict(dict(item))
    got = rule_verdict(dict(item))
    assert (got is None) == (expected is None), repr((item, got, expected))[:2000]
    if got is not None and expected is not None:
        if item["id"] is None:  # not given: LogEvent makes one up, the door assigns it later
            expected.pop("id")
        assert got == expected


def test_decoding_bytes_matches_admitting_the_parsed_object() -> None:
    value = orjson.dumps({"service": "api", "message": "m", "level": "warn", "context": {"a": 1}})
    event = decode_json(value)
    assert event.level == "WARNING"
    assert event.metadata == {"a": 1}
    assert event.context is None
    assert b"context" not in encode(event)


@pytest.mark.parametrize(
    ("item", "loc"),
    [
        ({"message": "m"}, ["service"]),
        ({"service": "api", "message": 5}, ["message"]),
        ({"service": "api", "message": "m", "colour": "red"}, ["colour"]),
        ({"service": "api", "message": "m", "metadata": {"a": [1, {"$b": 2}]}}, ["metadata"]),
        ({"service": "api", "message": "m", "level": "loud"}, ["level"]),
        (
            {"service": "api", "message": "m", "timestamp": "0001-01-01T00:00:00+01:00"},
            ["timestamp"],
        ),
    ],
)
def test_errors_name_the_field(item: dict[str, Any], loc: list[str]) -> None:
    with pytest.raises(EventInvalid) as info:
        admit_object(item, now=NOW)
    assert [list(e.loc) for e in info.value.errors] == [loc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trace_id", "a" * 31),
        ("trace_id", "a" * 33),
        ("trace_id", "g" + "a" * 31),
        ("trace_id", "a" * 15 + " " + "a" * 16),
        ("trace_id", "\uff10" * 32),  # fullwidth zeros: digits to Unicode, not hex
        ("trace_id", "0" * 32),
        ("span_id", "a" * 15),
        ("span_id", "a" * 15 + "\n"),
        ("span_id", "0" * 16),
    ],
)
def test_bad_trace_and_span_ids_are_refused_by_both_models(field: str, value: str) -> None:
    item = {"service": "api", "message": "m", field: value}
    with pytest.raises(EventInvalid) as info:
        admit_object(item, now=NOW)
    assert [list(e.loc) for e in info.value.errors] == [[field]]
    with pytest.raises(ValidationError):
        LogEvent.model_validate(item)


def test_trace_and_span_ids_are_stored_in_lower_case() -> None:
    event = admit_object(
        {"service": "api", "message": "m", "trace_id": "AB" * 16, "span_id": "Cd" * 8}, now=NOW
    )
    assert (event.trace_id, event.span_id) == ("ab" * 16, "cd" * 8)


@pytest.mark.parametrize("name", ["api\n", "", "a" * 65, "a b", "é", "a/b", "$where"])
def test_the_one_service_name_rule_refuses_everywhere(name: str) -> None:
    """event.py defines the rule once; the event rule and the query filter both refuse."""
    from logriver_common.event import SERVICE_NAME
    from logriver_query import filters

    assert SERVICE_NAME.fullmatch(name) is None
    assert filters.SERVICE.match(name) is None
