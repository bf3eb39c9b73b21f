"""Kafka record → :class:`StreamRecord`, and the frames each transport sends for it.

The stream does not run the full :class:`~logriver_common.event.LogEvent`
model on every record: the gateway already normalised the event and the writer
is the validator of record (it dead-letters what is bad). The stream checks the
shape it relies on (types of the fields it filters on, no unknown fields, a
known level) and re-serialises the object with orjson so the payload is always
one line of compact JSON, which the SSE framing depends on. A record that fails
is skipped and counted, never delivered and never fatal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from logriver_common.event import Level

MAX_RECORD_BYTES = 1024 * 1024
_FIELDS = frozenset(
    {
        "id",
        "timestamp",
        "level",
        "service",
        "message",
        "trace_id",
        "span_id",
        "host",
        "env",
        "metadata",
        "received_at",
    }
)
_SERVICE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")


class BadRecord(ValueError):
    """A record the stream will not deliver; ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(slots=True, eq=False)
class StreamRecord:
    """One deliverable event and where it sits in the topic."""

    partition: int
    offset: int
    service: str
    severity: int
    message: str
    trace_id: str | None
    metadata: dict[str, Any] | None
    received_at: float | None  # unix seconds, for the ingest-to-delivery latency
    body: bytes  # the event as one line of compact JSON
    cursor: str = ""  # position after this record, set by whoever delivers it
    _folded: str | None = field(default=None, repr=False)
    _sse: bytes | None = field(default=None, repr=False)
    _ws: str | None = field(default=None, repr=False)

    @property
    def folded_message(self) -> str:
        """The message case-folded once, shared by every substring filter."""
        if self._folded is None:
            self._folded = self.message.casefold()
        return self._folded

    def sse_frame(self) -> bytes:
        """``event: log`` frame; built once and shared by every SSE subscriber."""
        if self._sse is None:
            self._sse = b"event: log\nid: %s\ndata: %s\n\n" % (self.cursor.encode(), self.body)
        return self._sse

    def ws_text(self) -> str:
        """The WebSocket ``log`` message; built once and shared by every WS subscriber."""
        if self._ws is None:
            self._ws = f'{{"type":"log","id":"{self.cursor}","event":{self.body.decode()}}}'
        return self._ws

    def with_cursor(self, cursor: str) -> StreamRecord:
        """A copy carrying another cursor (its frames are rebuilt, not shared)."""
        return StreamRecord(
            partition=self.partition,
            offset=self.offset,
            service=self.service,
            severity=self.severity,
            message=self.message,
            trace_id=self.trace_id,
            metadata=self.metadata,
            received_at=self.received_at,
            body=self.body,
            cursor=cursor,
        )


def _timestamp(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise BadRecord("bad_field", "received_at is not an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRecord("bad_field", "received_at is not an RFC 3339 string") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_record(partition: int, offset: int, value: bytes | None) -> StreamRecord:
    """Check a record's shape and build the deliverable form; raises :class:`BadRecord`."""
    if value is None:
        raise BadRecord("empty", "record has no value")
    if len(value) > MAX_RECORD_BYTES:
        raise BadRecord("too_large", f"record is {len(value)} bytes")
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise BadRecord("not_json", "record value is not JSON") from None
    if not isinstance(event, dict):
        raise BadRecord("not_object", "record value is not a JSON object")
    unknown = event.keys() - _FIELDS
    if unknown:
        raise BadRecord("unknown_field", f"unknown fields {sorted(unknown)[:5]}")
    service = event.get("service")
    if not isinstance(service, str) or not _SERVICE.match(service):
        raise BadRecord("bad_field", "service is missing or invalid")
    message = event.get("message")
    if not isinstance(message, str):
        raise BadRecord("bad_field", "message is missing or not a string")
    raw_level = event.get("level", Level.INFO.value)
    try:
        level = Level.parse(raw_level) if isinstance(raw_level, str) else None
    except ValueError:
        level = None
    if level is None:
        raise BadRecord("bad_field", "level is not a known level")
    event["level"] = level.value
    trace_id = event.get("trace_id")
    if trace_id is not None:
        if not isinstance(trace_id, str) or not _TRACE_ID.match(trace_id):
            raise BadRecord("bad_field", "trace_id is not 32 hex digits")
        trace_id = event["trace_id"] = trace_id.lower()
    metadata = event.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise BadRecord("bad_field", "metadata is not an object")
    return StreamRecord(
        partition=partition,
        offset=offset,
        service=service,
        severity=level.severity,
        message=message,
        trace_id=trace_id,
        metadata=metadata,
        received_at=_timestamp(event.get("received_at")),
        body=orjson.dumps(event),
    )
