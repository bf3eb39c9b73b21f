"""Step 1: decode and validate one Kafka record into the document to store, or a rejection.

Nothing on a topic is trusted: every record is validated again with the same
``LogEvent`` model the gateway uses. Valid records take the fast path (one
pydantic JSON parse); only rejected ones pay for working out the exact reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
from opentelemetry.trace import SpanContext
from pydantic import ValidationError

from logriver_common.documents import event_to_document
from logriver_common.event import EventLimits, LogEvent
from logriver_common.telemetry import span_context_from_headers
from logriver_writer.records import Record
from logriver_writer.retention import RetentionPolicy


class RejectReason(StrEnum):
    """Why a record went to the DLQ (the ``x-dlq-reason`` header and a metric label)."""

    NULL_VALUE = "null_value"
    TOO_LARGE = "too_large"
    INVALID_UTF8 = "invalid_utf8"
    NOT_JSON = "not_json"
    FORBIDDEN_KEY = "forbidden_key"
    INVALID_EVENT = "invalid_event"
    UNSTORABLE = "unstorable"  # MongoDB refused the document itself (not a transient error)


# Not frozen: a frozen dataclass's __init__ costs twice as much, and this runs per event.
@dataclass(slots=True)
class Accepted:
    record: Record
    document: dict[str, Any]
    received_at: datetime | None
    producer_span: SpanContext | None


@dataclass(slots=True)
class Rejected:
    record: Record
    reason: RejectReason
    detail: str


Decoded = Accepted | Rejected
_DETAIL_CHARS = 1_000


class Decoder:
    def __init__(
        self, *, limits: EventLimits, max_record_bytes: int, retention: RetentionPolicy
    ) -> None:
        self._context = limits.context()
        self._max_record_bytes = max_record_bytes
        self._retention = retention

    def decode(self, record: Record) -> Decoded:
        value = record.value
        if value is None:
            return Rejected(record, RejectReason.NULL_VALUE, "record has no value (tombstone)")
        if len(value) > self._max_record_bytes:
            return Rejected(
                record,
                RejectReason.TOO_LARGE,
                f"record is {len(value)} bytes; at most {self._max_record_bytes}",
            )
        try:
            event = LogEvent.model_validate_json(value, context=self._context)
        except ValidationError as exc:
            reason, detail = classify_invalid(value, exc)
            return Rejected(record, reason, detail[:_DETAIL_CHARS])
        if "id" not in event.model_fields_set:
            # Without a client id, a redelivered record must get the same _id again.
            event.id = record_event_id(record)
        expire_at = self._retention.expire_at(event.service, event.level, event.timestamp)
        return Accepted(
            record=record,
            document=event_to_document(event, expire_at),
            received_at=event.received_at,
            producer_span=_producer_span(record),
        )


def classify_invalid(value: bytes, error: ValidationError) -> tuple[RejectReason, str]:
    """The most useful reason for a record pydantic rejected, with a readable detail."""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RejectReason.INVALID_UTF8, f"value is not UTF-8: {exc}"
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return RejectReason.NOT_JSON, f"value is not JSON: {exc}"
    if isinstance(parsed, dict):
        bad_key = find_forbidden_key(parsed)
        if bad_key is not None:
            return (
                RejectReason.FORBIDDEN_KEY,
                f"key {bad_key!r} starts with '$' or contains '.' or NUL; MongoDB "
                "would read it as an operator or a path",
            )
    return RejectReason.INVALID_EVENT, summarize_errors(error)


def find_forbidden_key(value: object, depth: int = 0) -> str | None:
    """A key that MongoDB would treat as an operator or path, anywhere in the value."""
    if depth > 32:
        return None  # deeper than any valid event; the schema error says why
    if isinstance(value, dict):
        for key, item in value.items():
            if key.startswith("$") or "." in key or "\x00" in key:
                return str(key)
            found = find_forbidden_key(item, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for item in value:
            found = find_forbidden_key(item, depth + 1)
            if found is not None:
                return found
    return None


def summarize_errors(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"]) or "value"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def record_event_id(record: Record) -> str:
    """A deterministic, time-ordered id (UUIDv7 layout) from the record's position.

    Time bits come from the record's timestamp so ``_id`` inserts stay
    append-friendly; the rest is a hash of topic, partition and offset, which
    are the same every time the record is delivered.
    """
    digest = hashlib.blake2b(
        f"{record.topic}/{record.partition}/{record.offset}".encode(), digest_size=10
    ).digest()
    rand = int.from_bytes(digest, "big")  # 80 bits, 74 of which are used
    millis = max(record.timestamp, 0) & ((1 << 48) - 1)
    value = (millis << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))
    hex_ = f"{value:032x}"
    return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"


def _producer_span(record: Record) -> SpanContext | None:
    # Most records carry no trace context; skip the propagator for them (hot path).
    headers = record.headers
    if not headers or not any(key == "traceparent" for key, _ in headers):
        return None
    return span_context_from_headers(headers)
