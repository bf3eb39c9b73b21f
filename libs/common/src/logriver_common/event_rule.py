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

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec
import orjson

from logriver_common.event import (
    _ALIASES,
    _NUL_TEXT,
    DEFAULT_LIMITS,
    EARLIEST_TIMESTAMP,
    EventLimits,
    Level,
    check_metadata,
    parse_time,
    to_utc,
    utcnow,
)

# msgspec matches with Python's `re.search`: \A and \Z, because `$` would also match
# before a trailing newline ("api\n" is not a service name).
_ID = Annotated[str, msgspec.Meta(pattern=r"\A[A-Za-z0-9._:\-]{1,64}\Z")]
_SERVICE = Annotated[str, msgspec.Meta(pattern=r"\A[A-Za-z0-9._\-]{1,64}\Z")]
_TRACE_ID = Annotated[str, msgspec.Meta(pattern=r"\A[0-9a-fA-F]{32}\Z")]
_SPAN_ID = Annotated[str, msgspec.Meta(pattern=r"\A[0-9a-fA-F]{16}\Z")]
_HOST = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
_ENV = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Event(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One event on the wire. After :func:`_normalise`, ``timestamp`` is an aware UTC
    datetime, ``level`` a :class:`Level` name and ``context`` folded into ``metadata``.

    Field order is the encoding order, the same as ``LogEvent``'s JSON.
    """

    id: _ID | None = None
    timestamp: datetime | float | None = None
    # None only before the rule ran (then INFO): a default would be left out when encoding.
    level: str | None = None
    service: _SERVICE
    message: str
    trace_id: _TRACE_ID | None = None
    span_id: _SPAN_ID | None = None
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
        return Level(self.level or Level.INFO.value)

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
_ENCODER = msgspec.json.Encoder()


def decode_json(value: bytes, *, limits: EventLimits = DEFAULT_LIMITS) -> Event:
    """A record value as an event; raises :class:`EventInvalid` (and msgspec.DecodeError
    for bytes that are not JSON)."""
    try:
        event = _DECODER.decode(value)
    except msgspec.ValidationError as exc:
        raise EventInvalid([_from_msgspec(exc)]) from None
    except RecursionError:  # msgspec's answer to JSON nested thousands of levels deep
        raise EventInvalid(
            [FieldError((), "the value is nested too deeply to be an event", "too_deep")]
        ) from None
    _normalise(event, limits, utcnow())
    return event


def admit_object(
    item: Mapping[str, Any], *, limits: EventLimits = DEFAULT_LIMITS, now: datetime
) -> Event:
    """An already parsed JSON object (an HTTP item, a mapped OTLP record) as an event."""
    try:
        event = msgspec.convert(item, Event, strict=True)
    except msgspec.ValidationError as exc:
        raise EventInvalid([_from_msgspec(exc)]) from None
    _normalise(event, limits, now)
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


def _normalise(event: Event, limits: EventLimits, now: datetime) -> None:
    """The checks msgspec's types cannot express; raises :class:`EventInvalid`."""
    errors: list[FieldError] = []

    def fail(field: str, msg: str, kind: str = "value_error") -> None:
        errors.append(FieldError((field,), msg, kind))

    if event.context is not None:
        if event.metadata is not None:
            fail("context", "send `metadata` or its alias `context`, not both")
        else:
            event.metadata, event.context = event.context, None

    level = Level.INFO if event.level is None else _ALIASES.get(event.level.strip().lower())
    if level is None:
        fail(
            "level",
            f"unknown level {str(event.level)[:40]!r}; use one of {', '.join(Level)} (or an alias "
            "such as warn, err, fatal)",
        )
    else:
        event.level = level.value

    try:
        event.timestamp = _timestamp(event.timestamp, limits, now)
    except ValueError as exc:
        fail("timestamp", str(exc))
    if event.received_at is not None:
        try:
            event.received_at = to_utc(parse_time(event.received_at), "received_at")
        except ValueError as exc:
            fail("received_at", str(exc))

    message = event.message
    cap = limits.max_message_bytes
    # len(str) <= cap/4 can never exceed the cap in UTF-8: skip encoding short messages.
    if len(message) * 4 > cap and len(message.encode("utf-8", "surrogatepass")) > cap:
        fail("message", f"message is longer than {cap} bytes")
    elif "\x00" in message:
        fail("message", _NUL_TEXT)
    for name, text in (("host", event.host), ("env", event.env)):
        if text is not None and "\x00" in text:
            fail(name, _NUL_TEXT)

    for name, hex_id in (("trace_id", event.trace_id), ("span_id", event.span_id)):
        if hex_id is not None:
            if hex_id.strip("0") == "":
                fail(name, "an all-zero id is invalid in W3C trace context")
            elif name == "trace_id":
                event.trace_id = hex_id.lower()
            else:
                event.span_id = hex_id.lower()

    if event.metadata is not None:
        try:
            _check_metadata_size(event.metadata, limits)
        except ValueError as exc:
            fail("metadata", str(exc))
    if errors:
        raise EventInvalid(errors)


def _timestamp(value: datetime | float | None, limits: EventLimits, now: datetime) -> datetime:
    if value is None:
        return now
    value = to_utc(parse_time(value), "timestamp")
    if value < EARLIEST_TIMESTAMP:
        raise ValueError("timestamp is before 1970-01-01T00:00:00Z")
    if value > now + limits.max_future_skew:
        raise ValueError(f"timestamp is more than {limits.max_future_skew} in the future")
    return value


def _check_metadata_size(metadata: dict[str, Any], limits: EventLimits) -> None:
    keys = check_metadata(metadata, limits)
    if keys > limits.max_metadata_keys:
        raise ValueError(f"metadata has {keys} keys; at most {limits.max_metadata_keys}")
    try:
        size = len(orjson.dumps(metadata))
    except TypeError as exc:
        raise ValueError(f"metadata is not JSON-serialisable: {exc}") from None
    if size > limits.max_metadata_bytes:
        raise ValueError(f"metadata is {size} bytes; at most {limits.max_metadata_bytes}")
