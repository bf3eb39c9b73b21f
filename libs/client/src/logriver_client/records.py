"""Turning log data into logriver events (the gateway's event contract, client side).

The client must not depend on ``logriver-common``, so the contract's limits are
restated here, and everything is made valid *before* sending: a key that starts
with ``$``, a message over the size cap or metadata nested too deeply would
otherwise get the event rejected by the gateway and the log line lost.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from logriver_client.ids import new_event_id

MAX_MESSAGE_BYTES = 32 * 1024
MAX_METADATA_DEPTH = 5  # the top-level metadata object is depth 1
MAX_METADATA_KEYS = 100
MAX_METADATA_BYTES = 16 * 1024
MAX_KEY_CHARS = 128
MAX_STRING_VALUE_CHARS = 4096
TRUNCATED = "…[truncated]"
# The gateway refuses NUL in any text and integers MongoDB cannot store (signed 64-bit).
NUL_REPLACEMENT = "\ufffd"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_SERVICE_RE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
_SERVICE_BAD_CHARS = re.compile(r"[^A-Za-z0-9._\-]")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LEVEL_ALIASES = {
    "trace": "DEBUG",
    "debug": "DEBUG",
    "info": "INFO",
    "information": "INFO",
    "notice": "INFO",
    "warn": "WARNING",
    "warning": "WARNING",
    "err": "ERROR",
    "error": "ERROR",
    "crit": "CRITICAL",
    "critical": "CRITICAL",
    "fatal": "CRITICAL",
    "panic": "CRITICAL",
    "emerg": "CRITICAL",
    "alert": "CRITICAL",
}

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_PLAIN_RECORD_ATTRS = logging.LogRecord("", 0, "", 0, "", (), None).__dict__
PLAIN_RECORD_SIZE = len(_PLAIN_RECORD_ATTRS)
RESERVED_RECORD_ATTRS = frozenset([*_PLAIN_RECORD_ATTRS, "message", "asctime", "taskName"])


def level_name(levelno: int) -> str:
    """Map any numeric level (custom ones included) onto the five logriver levels."""
    if levelno >= logging.CRITICAL:
        return "CRITICAL"
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARNING"
    if levelno >= logging.INFO:
        return "INFO"
    return "DEBUG"


def parse_level(value: object) -> str | None:
    """A level from free-form data (a JSON log line), or None when unrecognised."""
    if isinstance(value, int) and not isinstance(value, bool):
        return level_name(value)
    if isinstance(value, str):
        return _LEVEL_ALIASES.get(value.strip().lower())
    return None


def check_service(service: str) -> str:
    if not _SERVICE_RE.match(service):
        raise ValueError(f"service {service!r} must be 1 to 64 of [A-Za-z0-9._-]")
    return service


def coerce_service(service: str) -> str:
    """Make a free-form service name (from a log line) acceptable to the gateway."""
    cleaned = _SERVICE_BAD_CHARS.sub("_", service)[:64]
    return cleaned or "unknown"


def cap_utf8(text: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """Truncate ``text`` to at most ``limit`` bytes of UTF-8, marking the cut; NUL, which
    the gateway refuses, becomes U+FFFD."""
    text = no_nul(text)
    if len(text) * 4 <= limit:  # cannot exceed the cap: skip encoding
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    keep = limit - len(TRUNCATED.encode())
    return data[:keep].decode("utf-8", "ignore") + TRUNCATED


def no_nul(text: str) -> str:
    return text.replace("\x00", NUL_REPLACEMENT) if "\x00" in text else text


def sanitize_key(key: object) -> str:
    """Metadata keys may not start with ``$`` or contain ``.``: MongoDB reads those as operators
    and paths. Rewrite rather than drop, so the data stays findable."""
    text = str(key).replace("\x00", "").replace(".", "_").lstrip("$")
    return text[:MAX_KEY_CHARS] or "_"


class _KeyBudget:
    def __init__(self, limit: int) -> None:
        self.left = limit
        self.truncated = False


def _leaf(value: object) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return value
        try:
            return str(value)[:MAX_STRING_VALUE_CHARS]  # too wide for MongoDB: kept as text
        except ValueError:  # more digits than Python converts
            return f"<integer of {value.bit_length()} bits>"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return no_nul(value[:MAX_STRING_VALUE_CHARS])
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = repr(value) if isinstance(value, bytes) else str(value)
    return no_nul(text[:MAX_STRING_VALUE_CHARS])


def _sanitize(value: object, depth: int, budget: _KeyBudget) -> Any:
    container = isinstance(value, Mapping | list | tuple | set | frozenset)
    if container and depth >= MAX_METADATA_DEPTH:
        # Too deep for the gateway: keep the content, as text.
        return _leaf(json.dumps(value, default=str, ensure_ascii=False)[:MAX_STRING_VALUE_CHARS])
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if budget.left <= 0:
                budget.truncated = True
                break
            budget.left -= 1
            out[sanitize_key(key)] = _sanitize(item, depth + 1, budget)
        return out
    if container:
        assert isinstance(value, list | tuple | set | frozenset)  # noqa: S101 - narrowing
        return [_sanitize(item, depth + 1, budget) for item in value]
    return _leaf(value)


def _size_upper_bound(clean: dict[str, Any]) -> int:
    """A cheap bound on the JSON size of flat metadata (the usual case), so that most
    events skip a second serialisation; nested values make it give up (very large)."""
    total = 2
    for key, value in clean.items():
        total += 4 * len(key) + 4
        if isinstance(value, str):
            total += 6 * len(value) + 2  # worst case: every character escaped as \uXXXX
        elif value is None or isinstance(value, bool | int | float):
            total += 32
        else:
            return MAX_METADATA_BYTES * 2
    return total


def sanitize_metadata(metadata: Mapping[str, object]) -> dict[str, Any]:
    """Bounded, JSON-safe metadata that the gateway accepts.

    Limits: depth, total key count and serialised size. What does not fit is
    dropped and ``_truncated`` says so (one key is reserved for that marker).
    """
    budget = _KeyBudget(MAX_METADATA_KEYS - 1)
    clean: dict[str, Any] = _sanitize(metadata, 1, budget)
    if _size_upper_bound(clean) > MAX_METADATA_BYTES - 32 and (
        len(json.dumps(clean, ensure_ascii=False).encode()) > MAX_METADATA_BYTES - 32
    ):
        fitted: dict[str, Any] = {}
        used = 2
        for key, item in clean.items():
            cost = len(json.dumps({key: item}, ensure_ascii=False).encode())
            if used + cost > MAX_METADATA_BYTES - 32:
                budget.truncated = True
                continue
            fitted[key] = item
            used += cost
        clean = fitted
    if budget.truncated:
        clean["_truncated"] = True
    return clean


class PendingRecord(NamedTuple):
    """What ``emit`` captures in the caller's thread: cheap to build, no JSON yet.

    Serialising happens later in the sender thread so the logging call stays fast
    (a NamedTuple is several times cheaper to build than a dataclass). ``extras`` is
    the record's ``__dict__`` when the record has extra fields: values are referenced,
    not copied, so a caller that mutates an object it passed in ``extra`` after
    logging may see the later value shipped (as with ``logging.handlers.QueueHandler``).
    """

    created: float
    levelno: int
    message: str
    logger: str
    function: str | None
    line: int
    extras: dict[str, object] | None
    trace_id: int
    span_id: int
    exc_type: str | None


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


def record_to_event(
    pending: PendingRecord, *, service: str, host: str | None, env: str | None
) -> dict[str, Any]:
    """The event dict for one captured record (the gateway's ``LogEvent`` shape)."""
    metadata: dict[str, object] = {"logger": pending.logger, "line": pending.line}
    if pending.function:
        metadata["function"] = pending.function
    if pending.exc_type:
        metadata["exception_type"] = pending.exc_type
    if pending.extras:
        # ``extras`` is the record's whole __dict__; ``extra`` fields are what is not standard.
        # They win over the defaults above if the app chose the same names.
        for key, value in pending.extras.items():
            if key not in RESERVED_RECORD_ATTRS:
                metadata[key] = value
    event: dict[str, Any] = {
        "id": new_event_id(),
        "timestamp": iso_utc(pending.created),
        "level": level_name(pending.levelno),
        "service": service,
        "message": cap_utf8(pending.message),
        "metadata": sanitize_metadata(metadata),
    }
    if pending.trace_id and pending.span_id:
        event["trace_id"] = format(pending.trace_id, "032x")
        event["span_id"] = format(pending.span_id, "016x")
    if host:
        event["host"] = host
    if env:
        event["env"] = env
    return event


def encode_event(event: Mapping[str, Any]) -> bytes:
    """Compact JSON; anything JSON cannot represent becomes its ``str``. A lone surrogate
    (from a ``\\ud800`` escape in a JSON line) cannot be UTF-8: it becomes ``?``."""
    return json.dumps(
        event, ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False
    ).encode("utf-8", "replace")


def valid_trace_ids(trace_id: object, span_id: object) -> tuple[str, str] | None:
    """W3C ids from free-form data, lower-cased, or None unless both are valid."""
    if not isinstance(trace_id, str) or not isinstance(span_id, str):
        return None
    t, s = trace_id.lower(), span_id.lower()
    if _HEX32.match(t) and _HEX16.match(s) and t.strip("0") and s.strip("0"):
        return t, s
    return None
