"""LogRecord → event: every event the handler builds is valid under the gateway's model."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry import trace

from logriver_client.handler import LogriverHandler
from logriver_client.ids import line_event_id, new_event_id
from logriver_client.records import (
    MAX_MESSAGE_BYTES,
    MAX_METADATA_BYTES,
    PendingRecord,
    cap_utf8,
    encode_event,
    level_name,
    parse_level,
    record_to_event,
    sanitize_key,
    sanitize_metadata,
)
from logriver_common.event import LogEvent


def capture(record: logging.LogRecord, **handler_kwargs: Any) -> dict[str, Any]:
    handler = LogriverHandler("http://127.0.0.1:9", service="svc", env="test", **handler_kwargs)
    try:
        pending = handler._capture(record)
        return record_to_event(pending, service="svc", host="h1", env="test")
    finally:
        handler.close(timeout=0)


def make_record(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("app.orders")
    return logger.makeRecord(
        "app.orders", logging.INFO, __file__, 42, "hello %s", ("world",), None, extra=extra
    )


@pytest.mark.parametrize(
    ("levelno", "expected"),
    [(5, "DEBUG"), (10, "DEBUG"), (20, "INFO"), (25, "INFO"), (30, "WARNING"), (45, "ERROR"),
     (50, "CRITICAL"), (60, "CRITICAL")],
)  # fmt: skip
def test_level_mapping_covers_custom_levels(levelno: int, expected: str) -> None:
    assert level_name(levelno) == expected


def test_parse_level_aliases() -> None:
    assert parse_level("warn") == "WARNING"
    assert parse_level("FATAL") == "CRITICAL"
    assert parse_level(40) == "ERROR"
    assert parse_level("chatty") is None
    assert parse_level(True) is None


def test_record_becomes_a_valid_event_with_extras_in_metadata() -> None:
    event = capture(make_record(order_id="A-1042", attempt=3, **{"$where": 1, "a.b": 2}))
    parsed = LogEvent.model_validate_json(encode_event(event))
    assert parsed.message == "hello world"
    assert parsed.level == "INFO"
    assert parsed.service == "svc"
    assert parsed.host == "h1"
    assert parsed.env == "test"
    assert parsed.metadata is not None
    assert parsed.metadata["order_id"] == "A-1042"
    assert parsed.metadata["attempt"] == 3
    assert parsed.metadata["where"] == 1
    assert parsed.metadata["a_b"] == 2
    assert parsed.metadata["logger"] == "app.orders"
    assert parsed.metadata["line"] == 42
    assert parsed.trace_id is None
    assert abs(parsed.timestamp - datetime.now(UTC)) < timedelta(seconds=5)


def test_exception_text_is_in_the_message_and_type_in_metadata() -> None:
    logger = logging.getLogger("app")
    try:
        raise KeyError("missing")
    except KeyError:
        record = logger.makeRecord(
            "app", logging.ERROR, __file__, 1, "lookup failed", (), __import__("sys").exc_info()
        )
    event = capture(record)
    assert event["level"] == "ERROR"
    assert event["message"].startswith("lookup failed\nTraceback (most recent call last):")
    assert "KeyError: 'missing'" in event["message"]
    assert event["metadata"]["exception_type"] == "KeyError"
    LogEvent.model_validate_json(encode_event(event))


def test_current_opentelemetry_span_ids_are_attached() -> None:
    context = trace.SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=trace.TraceFlags(1),
    )
    with trace.use_span(trace.NonRecordingSpan(context)):
        event = capture(make_record())
    assert event["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert event["span_id"] == "00f067aa0ba902b7"
    LogEvent.model_validate_json(encode_event(event))
    with trace.use_span(trace.NonRecordingSpan(context)):
        without = capture(make_record(), capture_trace=False)
    assert "trace_id" not in without


def test_unserialisable_and_deep_extras_are_made_acceptable() -> None:
    deep: dict[str, Any] = {"l2": {"l3": {"l4": {"l5": {"l6": "deep"}}}}}
    event = capture(make_record(obj=object(), when=datetime(2026, 1, 1, tzinfo=UTC),
                                nan=float("nan"), deep=deep, raw=b"\x00\x01"))  # fmt: skip
    parsed = LogEvent.model_validate_json(encode_event(event))
    assert parsed.metadata is not None
    assert parsed.metadata["when"] == "2026-01-01T00:00:00+00:00"
    assert parsed.metadata["nan"] == "nan"
    assert parsed.metadata["obj"].startswith("<object object")
    # depth 5 is a leaf: the rest of the structure is kept as text
    assert "l6" in parsed.metadata["deep"]["l2"]["l3"]["l4"]


def test_metadata_key_count_and_size_are_bounded() -> None:
    many = {f"k{i}": i for i in range(500)}
    clean = sanitize_metadata(many)
    assert len(clean) == 100
    assert clean["_truncated"] is True
    big = {f"k{i}": "x" * 4000 for i in range(10)}
    clean = sanitize_metadata(big)
    assert clean["_truncated"] is True
    LogEvent.model_validate({"service": "s", "message": "m", "metadata": clean})
    assert len(encode_event(clean)) <= MAX_METADATA_BYTES


def test_keys_are_sanitised() -> None:
    assert sanitize_key("$set") == "set"
    assert sanitize_key("a.b.c") == "a_b_c"
    assert sanitize_key("$") == "_"
    assert len(sanitize_key("k" * 500)) == 128


def test_message_is_capped_at_32_kib_of_utf8() -> None:
    text = "é" * 40_000
    capped = cap_utf8(text)
    assert len(capped.encode()) <= MAX_MESSAGE_BYTES
    assert capped.endswith("[truncated]")
    assert cap_utf8("short") == "short"
    pending = PendingRecord(0.0, 20, text, "l", None, 1, None, 0, 0, None)
    event = record_to_event(pending, service="s", host=None, env=None)
    LogEvent.model_validate_json(encode_event(event))


def test_client_ids_are_uuid7_and_time_ordered() -> None:
    ids = [new_event_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    # The millisecond prefix orders ids created in different milliseconds.
    assert ids[0][:13] <= ids[-1][:13]
    shipped = line_event_id("0123456789abcdef", 123456)
    LogEvent.model_validate({"id": shipped, "service": "s", "message": "m"})
