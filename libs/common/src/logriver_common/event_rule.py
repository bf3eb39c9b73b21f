"""The event rule: the one definition of an acceptable log event, fast enough for every hop.

The gateway and the relay admit events with it (:func:`admit_object`), and
every consumer of ``logs.v1`` decodes records with it (through
:func:`logriver_common.decoding.decode_event`), so an event the door accepted
always decodes, and a record that decodes is one MongoDB can store and every
consumer can handle. It runs on every hop, so it is built on msgspec: a typed
decode of the wire shape (types, patterns, lengths, unknown fields) in C, then
:func:`_normalise`, the checks that need code: level aliases, timestamps in
UTC between 1970 and a little past now, no NUL in text, metadata that BSON can
hold (signed 64-bit integers, finite floats, bounded depth, keys and size, no
``$``/``.`` keys).

:class:`~logriver_common.event.LogEvent` (pydantic) documents the same contract
for the OpenAPI documents and builds events in tests; a property test holds the
two to the same verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
import orjson

from logriver_common.event import (
    _ALIASES,
    _NUL_TEXT,
    DEFAULT_LIMITS,
    EARLIEST_TIMESTAMP,
    SERVICE_NAME,
    EventLimits,
    Level,
    check_metadata,
    parse_time,
    to_utc,
    utcnow,
)

# msgspec matches with Python's `re.search`: \A and \Z, because `$` would also match
# before a trailing newline ("api\n" is not a service name).
# id, service, trace_id and span_id are checked in _normalise instead of by msgspec
# patterns: msgspec calls Python's re for a pattern, about 1.5 us per field on the writer's
# host (half of the whole typed decode); service names repeat (a set lookup), ids are one
# match, and trace and span ids are a length and a strip of the hex digits.
_ID_RE = re.compile(r"\A[A-Za-z0-9._:\-]{1,64}\Z")
_SERVICE_RE = SERVICE_NAME
_GOOD_SERVICES: set[str] = set()
_MAX_GOOD_SERVICES = 10_000
_HEX_DIGITS = "0123456789abcdefABCDEF"
_HOST = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
_ENV = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Event(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One event on the wire. After :func:`_normalise`, ``timestamp`` is an aware UTC
    datetime, ``level`` a :class:`Level` name and ``context`` folded into ``metadata``.

    Field order is the encoding order, the same as ``LogEvent``'s JSON.
    """

    id: str | None = None
    timestamp: datetime | float | None = None
    # None only before the rule ran (then INFO): a default would be left out when encoding.
    level: str | None = None
    service: str
    message: str
    trace_id: str | None = None
    span_id: str | None = None
    host: _HOST | None = None
    env: _ENV | None = None
    metadata: dict[str, Any] | None = None
    received_at: datetime | float | None = None
    context: dict[str, Any] | None = None  # accepted as an alias of metadata, never stored

    @property
    def when(self) -> datetime:
        """The normalised timestamp (always set once the rule has run)."""
        assert isinstance(self.timestamp, datetime)  # noqa: S101 - _normalise guarantees it
        return self.timestamp

    @property
    def received(self) -> datetime | None:
        """The normalised ``received_at`` (a datetime once the rule has run)."""
        value = self.received_at
        return value if isinstance(value, datetime) else None

    @property
    def level_enum(self) -> Level:
        # A dict lookup: calling Level(...) per event costs 0.4 µs (see _LEVELS).
        return _LEVELS[self.level or Level.INFO.value]

    @property
    def severity(self) -> int:
        return self.level_enum.severity


@dataclass(frozen=True, slots=True)
class FieldError:
    loc: tuple[str | int, ...]
    msg: str
    type: str

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


class EventInvalid(ValueError):
    """The event breaks the rule; ``errors`` say where and why."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(
            "; ".join(f"{'.'.join(map(str, e.loc)) or 'event'}: {e.msg}" for e in errors)
        )
        self.errors = errors


_DECODER = msgspec.json.Decoder(Event)
_ARRAY_DECODER = msgspec.json.Decoder(list[Event])
_ENCODER = msgspec.json.Encoder()


def decode_json(
    value: bytes, *, limits: EventLimits = DEFAULT_LIMITS, now: datetime | None = None
) -> Event:
    """A record value as an event; raises :class:`EventInvalid` (and msgspec.DecodeError
    for bytes that are not JSON). ``now`` (for the future-skew check) defaults to the clock;
    a consumer decoding a fetched batch passes one value for all of it."""
    try:
        event = _DECODER.decode(value)
    except msgspec.ValidationError as exc:
        raise EventInvalid([_from_msgspec(exc)]) from None
    except RecursionError:  # msgspec's answer to JSON nested thousands of levels deep
        raise EventInvalid(
            [FieldError((), "the value is nested too deeply to be an event", "too_deep")]
        ) from None
    _normalise(event, limits, utcnow() if now is None else now, len(value))
    return event


def admit_object(
    item: Mapping[str, Any], *, limits: EventLimits = DEFAULT_LIMITS, now: datetime
) -> Event:
    """An already parsed JSON object (an HTTP item, a mapped OTLP record) as an event."""
    try:
        event = msgspec.convert(item, Event, strict=True)
    except msgspec.ValidationError as exc:
        raise EventInvalid([_from_msgspec(exc)]) from None
    _normalise(event, limits, now, None)
    return event


def decode_json_array(body: bytes) -> list[Event] | None:
    """A JSON array of events typed in one pass, or None if any item fails a type check.

    The gateway's fast path for a batch body: parsing straight into events skips
    building a dict per item and converting it. None (not JSON, not an array, a
    wrong type anywhere) sends the caller to the item-by-item path, which names each
    bad item; a property test holds both paths to the same records and errors.
    Every event still needs :func:`admit_decoded`.
    """
    try:
        return _ARRAY_DECODER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None


def admit_decoded(event: Event, *, limits: EventLimits = DEFAULT_LIMITS, now: datetime) -> Event:
    """The rest of the rule for an event typed by :func:`decode_json_array`."""
    _normalise(event, limits, now, None)
    return event


def encode(event: Event) -> bytes:
    """The Kafka record value: compact JSON of the normalised event, unset fields left out."""
    return _ENCODER.encode(event)


def _from_msgspec(error: msgspec.ValidationError) -> FieldError:
    """msgspec says ``Expected `str`, got `int` - at `$.metadata[0]```: split off the path."""
    text = str(error)
    msg, sep, where = text.rpartition(" - at `")
    if not sep:
        if "unknown field `" in text:
            name = text.split("`")[1]
            msg = "unknown field: extra fields are not permitted"
            return FieldError((name,), msg, "extra_forbidden")
        if "missing required field `" in text:
            name = text.split("`")[1]
            return FieldError((name,), "field required", "missing")
        return FieldError((), text, "invalid")
    return FieldError(_path(where.rstrip("`")), msg, "invalid")


def _path(where: str) -> tuple[str | int, ...]:
    """``$.metadata.a[0]`` → ``("metadata", "a", 0)``; ``[...]`` (a dict key) → ``"..."``."""
    loc: list[str | int] = []
    for part in where.removeprefix("$").replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("["):
            inner = part[1:-1]
            loc.append(int(inner) if inner.isdigit() else inner)
        else:
            loc.append(part)
    return tuple(loc)


def _normalise(event: Event, limits: EventLimits, now: datetime, raw_size: int | None) -> None:
    """The checks msgspec's types cannot express; raises :class:`EventInvalid`.

    Runs for every event on every hop: common cases are checked first and cheaply.
    """
    errors: list[FieldError] = []

    service = event.service
    if service not in _GOOD_SERVICES:
        if _SERVICE_RE.match(service) is None:
            errors.append(FieldError(("service",), _SERVICE_MSG, "string_pattern_mismatch"))
        else:
            if len(_GOOD_SERVICES) >= _MAX_GOOD_SERVICES:
                _GOOD_SERVICES.clear()
            _GOOD_SERVICES.add(service)
    if event.id is not None and _ID_RE.match(event.id) is None:
        errors.append(FieldError(("id",), _ID_MSG, "string_pattern_mismatch"))

    if event.context is not None:
        if event.metadata is not None:
            errors.append(_error("context", "send `metadata` or its alias `context`, not both"))
        else:
            event.metadata, event.context = event.context, None

    level = event.level
    if level is None:
        event.level = Level.INFO.value
    elif level not in _LEVEL_NAMES:
        normalised = _ALIASES.get(level.strip().lower())
        if normalised is None:
            errors.append(
                _error(
                    "level",
                    f"unknown level {level[:40]!r}; use one of {', '.join(Level)} (or an "
                    "alias such as warn, err, fatal)",
                )
            )
        else:
            event.level = normalised.value

    stamp = event.timestamp
    if type(stamp) is datetime and stamp.tzinfo is UTC:
        if not EARLIEST_TIMESTAMP <= stamp <= now + limits.max_future_skew:
            errors.append(_error("timestamp", _time_problem(stamp, limits)))
    else:
        try:
            event.timestamp = _timestamp(stamp, limits, now)
        except ValueError as exc:
            errors.append(_error("timestamp", str(exc)))
    received = event.received_at
    if received is not None and not (type(received) is datetime and received.tzinfo is UTC):
        try:
            event.received_at = to_utc(parse_time(received), "received_at")
        except ValueError as exc:
            errors.append(_error("received_at", str(exc)))

    message = event.message
    cap = limits.max_message_bytes
    # len(str) <= cap/4 can never exceed the cap in UTF-8: skip encoding short messages.
    if len(message) * 4 > cap and len(message.encode("utf-8", "surrogatepass")) > cap:
        errors.append(_error("message", f"message is longer than {cap} bytes"))
    elif "\x00" in message:
        errors.append(_error("message", _NUL_TEXT))
    if event.host is not None and "\x00" in event.host:
        errors.append(_error("host", _NUL_TEXT))
    if event.env is not None and "\x00" in event.env:
        errors.append(_error("env", _NUL_TEXT))

    if event.trace_id is not None:
        event.trace_id = _w3c_id(event.trace_id, "trace_id", 32, errors)
    if event.span_id is not None:
        event.span_id = _w3c_id(event.span_id, "span_id", 16, errors)

    if event.metadata is not None:
        try:
            _check_metadata_size(event.metadata, limits, raw_size)
        except ValueError as exc:
            errors.append(_error("metadata", str(exc)))
    if errors:
        raise EventInvalid(errors)


_SERVICE_MSG = "String should match pattern '^[A-Za-z0-9._\\-]{1,64}$'"
_ID_MSG = "String should match pattern '^[A-Za-z0-9._:\\-]{1,64}$'"
_ZERO_ID = "an all-zero id is invalid in W3C trace context"
_LEVEL_NAMES = frozenset(level.value for level in Level)
_LEVELS = {level.value: level for level in Level}


def _w3c_id(value: str, field: str, digits: int, errors: list[FieldError]) -> str:
    """A W3C trace or span id in lower case; a bad one adds to ``errors``."""
    # strip() of the hex digits leaves "" only if every character is one (ASCII only).
    if len(value) != digits or value.strip(_HEX_DIGITS):
        msg = f"String should match pattern '^[0-9a-fA-F]{{{digits}}}$'"
        errors.append(FieldError((field,), msg, "string_pattern_mismatch"))
    elif value.strip("0") == "":
        errors.append(_error(field, _ZERO_ID))
    else:
        return value.lower()
    return value


def _error(field: str, msg: str) -> FieldError:
    return FieldError((field,), msg, "value_error")


def _time_problem(stamp: datetime, limits: EventLimits) -> str:
    if stamp < EARLIEST_TIMESTAMP:
        return "timestamp is before 1970-01-01T00:00:00Z"
    return f"timestamp is more than {limits.max_future_skew} in the future"


def _timestamp(value: datetime | float | None, limits: EventLimits, now: datetime) -> datetime:
    if value is None:
        return now
    value = to_utc(parse_time(value), "timestamp")
    if value < EARLIEST_TIMESTAMP:
        raise ValueError("timestamp is before 1970-01-01T00:00:00Z")
    if value > now + limits.max_future_skew:
        raise ValueError(f"timestamp is more than {limits.max_future_skew} in the future")
    return value


# orjson writes a JSON number in at most ~4.5 times its input length ("1e15" is
# 1000000000000000.0); nothing else grows. So a record this much smaller than the
# metadata limit cannot hold metadata over it, and the re-encoding is skipped.
_GROWTH = 5


def _check_metadata_size(
    metadata: dict[str, Any], limits: EventLimits, raw_size: int | None
) -> None:
    keys = check_metadata(metadata, limits)
    if keys > limits.max_metadata_keys:
        raise ValueError(f"metadata has {keys} keys; at most {limits.max_metadata_keys}")
    if raw_size is not None and raw_size * _GROWTH <= limits.max_metadata_bytes:
        return
    try:
        size = len(orjson.dumps(metadata))
    except TypeError as exc:
        raise ValueError(f"metadata is not JSON-serialisable: {exc}") from None
    if size > limits.max_metadata_bytes:
        raise ValueError(f"metadata is {size} bytes; at most {limits.max_metadata_bytes}")
