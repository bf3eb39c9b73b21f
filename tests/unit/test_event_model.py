"""The event contract against hostile input: every bad field is named in the error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from logriver_common.event import EventLimits, Level, LogEvent


def valid(**overrides: Any) -> dict[str, Any]:
    return {"service": "checkout", "message": "payment accepted", **overrides}


def error_locs(data: dict[str, Any], limits: EventLimits | None = None) -> set[str]:
    with pytest.raises(ValidationError) as info:
        LogEvent.model_validate(data, context=(limits or EventLimits()).context())
    return {".".join(str(p) for p in err["loc"]) for err in info.value.errors()}


def test_minimal_event_gets_defaults() -> None:
    event = LogEvent.model_validate(valid())
    assert event.level is Level.INFO
    assert event.timestamp.tzinfo is UTC
    assert len(event.id) == 36
    assert event.id[14] == "7"


def test_original_design_log_entry_is_accepted() -> None:
    entry = {
        "timestamp": "2026-11-21T10:00:00Z",
        "level": "ERROR",
        "service": "billing",
        "message": "db timeout",
        "metadata": {"attempt": 3, "region": "eu"},
    }
    event = LogEvent.model_validate(entry)
    assert event.metadata == {"attempt": 3, "region": "eu"}
    assert event.level is Level.ERROR


@pytest.mark.parametrize(
    ("alias", "level"),
    [
        ("warn", Level.WARNING),
        ("WARN", Level.WARNING),
        ("fatal", Level.CRITICAL),
        ("err", Level.ERROR),
        ("info", Level.INFO),
        (" Debug ", Level.DEBUG),
        ("trace", Level.DEBUG),
    ],
)
def test_level_aliases_normalise(alias: str, level: Level) -> None:
    assert LogEvent.model_validate(valid(level=alias)).level is level


@pytest.mark.parametrize("bad", ["verbose", "", "ERRORS", 40, ["ERROR"]])
def test_unknown_or_mistyped_levels_are_rejected(bad: object) -> None:
    assert error_locs(valid(level=bad)) == {"level"}


def test_context_is_an_alias_of_metadata() -> None:
    event = LogEvent.model_validate(valid(context={"user": "u1"}))
    assert event.metadata == {"user": "u1"}
    assert b'"metadata":{"user":"u1"}' in event.to_json()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("service", 123),
        ("service", ""),
        ("service", "has space"),
        ("service", "x" * 65),
        ("service", {"$gt": ""}),
        ("message", 42),
        ("message", None),
        ("message", ["a"]),
        ("timestamp", "yesterday"),
        ("timestamp", {"$date": 1}),
        ("trace_id", "xyz"),
        ("trace_id", "0" * 32),
        ("span_id", "abc"),
        ("metadata", "not-an-object"),
        ("metadata", [1, 2]),
        ("id", "x" * 65),
        ("id", "bad id with spaces"),
        ("id", {"$ne": None}),
        ("host", ""),
        ("env", "e" * 65),
    ],
)
def test_wrong_types_and_shapes_name_the_field(field: str, value: object) -> None:
    assert error_locs(valid(**{field: value})) == {field}


def test_missing_service_and_message_are_both_reported() -> None:
    assert error_locs({"level": "INFO"}) == {"service", "message"}


def test_unknown_top_level_fields_are_rejected() -> None:
    assert error_locs(valid(mesage="typo")) == {"mesage"}


def test_oversized_message_is_rejected_by_utf8_size() -> None:
    limits = EventLimits(max_message_bytes=100)
    assert LogEvent.model_validate(valid(message="a" * 100), context=limits.context())
    # 34 characters of 3 bytes each: 102 bytes, over the cap though under 100 characters.
    assert error_locs(valid(message="€" * 34), limits) == {"message"}


def test_default_message_cap_is_32_kib() -> None:
    LogEvent.model_validate(valid(message="a" * 32 * 1024))
    assert error_locs(valid(message="a" * (32 * 1024 + 1))) == {"message"}


@pytest.mark.parametrize(
    "metadata",
    [
        {"$where": "sleep(1000)"},
        {"user": {"$gt": ""}},
        {"a.b": 1},
        {"nested": [{"ok": 1}, {"bad.key": 2}]},
        {"": 1},
        {"k" * 129: 1},
        {"nul\x00": 1},
    ],
)
def test_dollar_dot_and_empty_metadata_keys_are_rejected(metadata: dict[str, Any]) -> None:
    assert error_locs(valid(metadata=metadata)) == {"metadata"}


def test_deep_nesting_is_rejected() -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(10):
        deep = {"n": deep}
    assert error_locs(valid(metadata=deep)) == {"metadata"}
    LogEvent.model_validate(valid(metadata={"a": {"b": {"c": 1}}}))


def test_too_many_metadata_keys_are_rejected() -> None:
    assert error_locs(valid(metadata={f"k{i}": i for i in range(101)})) == {"metadata"}


def test_oversized_metadata_is_rejected() -> None:
    limits = EventLimits(max_metadata_bytes=1000)
    assert error_locs(valid(metadata={"blob": "x" * 1000}), limits) == {"metadata"}


def test_timestamp_far_in_future_is_rejected() -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    assert error_locs(valid(timestamp=future.isoformat())) == {"timestamp"}
    near = datetime.now(UTC) + timedelta(minutes=1)
    LogEvent.model_validate(valid(timestamp=near.isoformat()))


def test_skew_is_configurable() -> None:
    limits = EventLimits(max_future_skew=timedelta(hours=2))
    future = datetime.now(UTC) + timedelta(hours=1)
    LogEvent.model_validate(valid(timestamp=future.isoformat()), context=limits.context())


def test_non_utc_offsets_are_normalised_to_utc() -> None:
    event = LogEvent.model_validate(valid(timestamp="2026-11-21T12:00:00+05:30"))
    assert event.timestamp == datetime(2026, 11, 21, 6, 30, tzinfo=UTC)
    assert event.timestamp.utcoffset() == timedelta(0)
    assert b'"timestamp":"2026-11-21T06:30:00Z"' in event.to_json()


def test_naive_timestamps_are_taken_as_utc() -> None:
    event = LogEvent.model_validate(valid(timestamp="2026-11-21T12:00:00"))
    assert event.timestamp == datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_trace_ids_are_lowercased() -> None:
    event = LogEvent.model_validate(valid(trace_id="AB" * 16, span_id="CD" * 8))
    assert event.trace_id == "ab" * 16
    assert event.span_id == "cd" * 8


def test_record_value_round_trips() -> None:
    event = LogEvent.model_validate(valid(level="warn", metadata={"k": [1, {"x": None}]}))
    again = LogEvent.model_validate_json(event.to_json())
    assert again == event


def test_a_null_level_means_not_given() -> None:
    assert LogEvent.model_validate(valid(level=None)).level is Level.INFO
