"""Kafka record → :class:`StreamRecord`, and the frames each transport sends for it.

Records are decoded by the canonical decoder of libs/common, the gateway's own
rule, so live tail delivers exactly what the writer stores: a record the writer
dead-letters is never tailed. The payload is the event re-encoded by the model
(one line of compact JSON, which the SSE framing depends on), never the bytes
as produced. A record that is refused is skipped and counted, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import SpanContext

from logriver_common.decoding import DEFAULT_MAX_RECORD_BYTES, Rejection, decode_event
from logriver_common.event_rule import encode

# The writer's default: a record the writer would refuse as too large is not tailed either.
MAX_RECORD_BYTES = DEFAULT_MAX_RECORD_BYTES


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
    # The sampled producer span from the record's headers: its delivery gets a span.
    producer: SpanContext | None = None
    key: bytes | None = None
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


def parse_record(partition: int, offset: int, value: bytes | None) -> StreamRecord:
    """The deliverable form of a record; raises :class:`BadRecord` (only) for a refused one."""
    event = decode_event(value, max_record_bytes=MAX_RECORD_BYTES)
    if isinstance(event, Rejection):
        raise BadRecord(event.reason.value, event.detail)
    received_at = event.received
    return StreamRecord(
        partition=partition,
        offset=offset,
        service=event.service,
        severity=event.severity,
        message=event.message,
        trace_id=event.trace_id,
        metadata=event.metadata,
        received_at=None if received_at is None else received_at.timestamp(),
        body=encode(event),
    )
