from __future__ import annotations

import orjson
import pytest

from logriver_stream.records import BadRecord, parse_record


def test_parses_and_normalises() -> None:
    value = orjson.dumps(
        {
            "service": "api",
            "message": "line\nwith newline",
            "level": "warn",
            "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736",
            "metadata": {"order": "A-1"},
            "received_at": "2026-11-21T10:00:00+00:00",
        }
    )
    record = parse_record(3, 42, value)
    assert (record.partition, record.offset, record.service) == (3, 42, "api")
    assert record.severity == 30
    assert record.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert record.received_at == pytest.approx(1795255200.0)
    assert b"\n" not in record.body  # one SSE data line, whatever the message holds
    assert orjson.loads(record.body)["level"] == "WARNING"
    record.cursor = "CUR"
    assert record.sse_frame() == b"event: log\nid: CUR\ndata: " + record.body + b"\n\n"
    ws = orjson.loads(record.ws_text())
    assert ws["type"] == "log"
    assert ws["id"] == "CUR"
    assert ws["event"]["message"] == "line\nwith newline"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "null_value"),
        (b"{nope", "not_json"),
        (b"\xff\xfe", "invalid_utf8"),
        (b"[1, 2]", "not_object"),
        (b'{"service": "api", "message": "x", "colour": "red"}', "invalid_event"),
        (b'{"message": "x"}', "invalid_event"),
        (b'{"service": "bad service!", "message": "x"}', "invalid_event"),
        (b'{"service": "api", "message": 5}', "invalid_event"),
        (b'{"service": "api", "message": "x", "level": "loud"}', "invalid_event"),
        (b'{"service": "api", "message": "x", "trace_id": "xyz"}', "invalid_event"),
        (b'{"service": "api", "message": "x", "metadata": [1]}', "invalid_event"),
        (b'{"service": "api", "message": "x", "received_at": "yesterday"}', "invalid_event"),
        # What the writer dead-letters is never tailed (the same decoder decides both).
        (
            b'{"service": "api", "message": "x", "timestamp": "0001-01-01T00:00:00+01:00"}',
            "invalid_event",
        ),
        (
            b'{"service": "api", "message": "x", "metadata": {"n": 18446744073709551615}}',
            "invalid_event",
        ),
        (b'{"service": "api", "message": "x", "metadata": {"$gt": 1}}', "forbidden_key"),
        (
            b'{"service": "api", "message": "x", "metadata": ' + b'{"a":' * 400 + b"1" + b"}" * 401,
            "invalid_event",
        ),
        (b" " * (1024 * 1024 + 1), "too_large"),
    ],
)
def test_bad_records_are_refused_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(BadRecord) as info:
        parse_record(0, 0, value)
    assert info.value.reason == reason
