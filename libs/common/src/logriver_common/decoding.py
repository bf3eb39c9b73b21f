"""The one canonical decoder of ``logs.v1`` records, shared by every consumer.

``decode_event`` turns any bytes into either an :class:`~logriver_common.event_rule.Event`
or a typed :class:`Rejection`, and never raises: a consumer that decodes through
it cannot be stopped by a record, whoever produced it. It applies exactly the
gateway's acceptance rule (:mod:`logriver_common.event_rule`), so an event the
gateway accepted always decodes, and one that does not decode was never
accepted by logriver.

Valid records take the fast path (one msgspec decode, a few microseconds); only
rejected ones pay for working out the most useful reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec
import orjson
import pydantic_core
from pydantic import ValidationError

from logriver_common.event import DEFAULT_LIMITS, EventLimits
from logriver_common.event_rule import Event, EventInvalid, decode_json

log = logging.getLogger(__name__)

DEFAULT_MAX_RECORD_BYTES = 256 * 1024
_DETAIL_CHARS = 1_000
# find_forbidden_key gives up below this depth: no valid event nests this deep.
_KEY_SEARCH_DEPTH = 32


class RejectReason(StrEnum):
    """Why a record was refused (the DLQ's ``x-dlq-reason`` header and a metric label)."""

    NULL_VALUE = "null_value"
    TOO_LARGE = "too_large"
    INVALID_UTF8 = "invalid_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    FORBIDDEN_KEY = "forbidden_key"
    INVALID_EVENT = "invalid_event"
    EXPIRED = "expired"  # retention would delete it at once (gateway and relay only)
    UNSTORABLE = "unstorable"  # MongoDB refused the document itself (not a transient error)
    HANDLER_ERROR = "handler_error"  # a consumer failed on this one record
    DECODER_ERROR = "decoder_error"  # a bug in this module; counted, never raised


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str


def decode_event(
    value: bytes | None,
    *,
    limits: EventLimits = DEFAULT_LIMITS,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    now: datetime | None = None,
) -> Event | Rejection:
    """The event in a record value, or why it cannot be used. Never raises.

    ``now`` is for the future-skew check; a consumer decoding a fetched batch passes one
    value for the whole batch (reading the clock per record is measurable).
    """
    if value is None:
        return Rejection(RejectReason.NULL_VALUE, "record has no value (tombstone)")
    if len(value) > max_record_bytes:
        return Rejection(
            RejectReason.TOO_LARGE, f"record is {len(value)} bytes; at most {max_record_bytes}"
        )
    try:
        return decode_json(value, limits=limits, now=now)
    except EventInvalid as exc:
        return _classify(value, str(exc))
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec raises the latter
        return _classify(value, str(exc))
    except Exception as exc:
        # Only a bug in the model gets here (every rule raises ValueError); keep it visible.
        log.exception("decoder bug: a record raised outside validation")
        return Rejection(RejectReason.DECODER_ERROR, f"{type(exc).__name__}: {exc}"[:_DETAIL_CHARS])


def _classify(value: bytes, error: str) -> Rejection:
    try:
        reason, detail = classify_invalid(value, error)
    except Exception as exc:  # noqa: BLE001 - working out the reason must not raise either
        reason, detail = RejectReason.INVALID_EVENT, f"invalid event ({type(exc).__name__})"
    return Rejection(reason, detail[:_DETAIL_CHARS])


def classify_invalid(value: bytes, error: str) -> tuple[RejectReason, str]:
    """The most useful reason for a value the model rejected, with a readable detail."""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RejectReason.INVALID_UTF8, f"value is not UTF-8: {exc}"
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return RejectReason.NOT_JSON, f"value is not JSON: {exc}"
    if not isinstance(parsed, dict):
        return RejectReason.NOT_OBJECT, f"value is a JSON {type(parsed).__name__}, not an object"
    bad_key = find_forbidden_key(parsed)
    if bad_key is not None:
        return (
            RejectReason.FORBIDDEN_KEY,
            f"key {bad_key[:100]!r} starts with '$' or contains '.' or NUL; MongoDB would read "
            "it as an operator or a path",
        )
    return RejectReason.INVALID_EVENT, error


def parse_json(value: bytes) -> Any:
    """JSON the way the decoder reads it (pydantic's jiter), for the door's own parsing.

    One parser for the door and the decoder, so both see the same values: an
    integer past 64 bits stays an integer (and is refused), where orjson would
    quietly turn it into a float; NaN is refused, 1e400 is infinity (refused).
    Raises ``ValueError`` for anything that is not JSON.
    """
    return pydantic_core.from_json(value, allow_inf_nan=False)


def find_forbidden_key(value: object) -> str | None:
    """A key that MongoDB would treat as an operator or a path, anywhere in the value."""
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if depth > _KEY_SEARCH_DEPTH:
            continue  # deeper than any valid event; the schema error says why
        if isinstance(item, dict):
            for key, child in item.items():
                if key.startswith("$") or "." in key or "\x00" in key:
                    return str(key)
                pending.append((child, depth + 1))
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
    return None


def field_errors(error: ValidationError) -> list[dict[str, Any]]:
    """The model's errors for an HTTP answer, without echoing input (it may be huge or secret)."""
    return [
        {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in error.errors(include_url=False, include_context=False, include_input=False)
    ]
