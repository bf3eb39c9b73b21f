"""The log event: the contract between clients, the gateway, Kafka and every consumer.

This model is the one acceptance rule. The gateway and the relay validate what
clients send with it; the writer, stream and alerter decode every ``logs.v1``
record through :func:`logriver_common.decoding.decode_event`, which applies the
same model, so an event the gateway accepted is always one MongoDB can store
and one every consumer can handle. The rule is therefore about storage as much
as shape: integers fit BSON's signed 64 bits, floats are finite, no text holds
NUL, timestamps lie between 1970 and a little past now. Limits travel in the
validation context (:class:`EventLimits`) so each service can configure them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import msgspec
import orjson
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from uuid_utils import uuid7


class Level(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @classmethod
    def parse(cls, value: str) -> Level:
        """Accept the level names and aliases that logging libraries emit."""
        try:
            return _ALIASES[value.strip().lower()]
        except KeyError:
            raise ValueError(
                f"unknown level {value!r}; use one of {', '.join(cls)} (or an alias such as "
                "warn, err, fatal)"
            ) from None


_SEVERITY = {
    Level.DEBUG: 10,
    Level.INFO: 20,
    Level.WARNING: 30,
    Level.ERROR: 40,
    Level.CRITICAL: 50,
}
_ALIASES: dict[str, Level] = {
    "trace": Level.DEBUG,
    "debug": Level.DEBUG,
    "info": Level.INFO,
    "information": Level.INFO,
    "notice": Level.INFO,
    "warn": Level.WARNING,
    "warning": Level.WARNING,
    "err": Level.ERROR,
    "error": Level.ERROR,
    "crit": Level.CRITICAL,
    "critical": Level.CRITICAL,
    "fatal": Level.CRITICAL,
    "panic": Level.CRITICAL,
    "emerg": Level.CRITICAL,
    "alert": Level.CRITICAL,
}


@dataclass(frozen=True, slots=True)
class EventLimits:
    """Configurable bounds; passed as ``context={"limits": ...}`` when validating."""

    max_message_bytes: int = 32 * 1024
    max_future_skew: timedelta = timedelta(minutes=5)
    max_metadata_depth: int = 5
    max_metadata_keys: int = 100
    max_metadata_bytes: int = 16 * 1024

    def context(self) -> dict[str, Any]:
        return {"limits": self}


DEFAULT_LIMITS = EventLimits()
# Nothing before the Unix epoch is a real log line; such stamps come from zeroed clocks.
EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
# BSON has one integer type wide enough for JSON numbers: signed 64-bit.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"
# The service-name rule, written once; the event rule and the query, stream and
# alerter filters import it. Pydantic (Rust regex) reads `$` as the end of the text;
# Python's `re` would also match before a trailing newline, hence SERVICE_NAME's \A..\Z.
SERVICE_CHARS = r"[A-Za-z0-9._\-]{1,64}"
SERVICE_PATTERN = rf"^{SERVICE_CHARS}$"
SERVICE_NAME = re.compile(rf"\A{SERVICE_CHARS}\Z")


def limits_of(context: object) -> EventLimits:
    """The limits in a validation context (``EventLimits.context()``), or the defaults."""
    if isinstance(context, dict):
        limits = context.get("limits")
        if isinstance(limits, EventLimits):
            return limits
    return DEFAULT_LIMITS


def _limits(info: ValidationInfo) -> EventLimits:
    return limits_of(info.context)


def new_event_id() -> str:
    """A UUIDv7: time-ordered, so ``_id`` inserts stay append-friendly in MongoDB.

    uuid-utils generates it in Rust: an id per event is on the gateway's hot path.
    """
    return str(uuid7())


def utcnow() -> datetime:
    return datetime.now(UTC)


class LogEvent(BaseModel):
    """One normalised log event.

    Unknown top-level fields are rejected so a misspelt field name is an error
    the sender sees, not data that silently disappears.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=False)

    id: Annotated[str, Field(pattern=_ID_PATTERN)] = Field(
        default_factory=new_event_id,
        description="Idempotency key (at most 64 of [A-Za-z0-9._:-]); UUIDv7 when absent.",
    )
    timestamp: datetime = Field(
        default_factory=utcnow,
        description="RFC 3339 time of the event; defaults to receive time; stored in UTC.",
    )
    level: Level = Field(
        default=Level.INFO,
        description="DEBUG, INFO, WARNING, ERROR or CRITICAL; aliases (warn, err, fatal) accepted.",
    )
    service: Annotated[str, Field(pattern=SERVICE_PATTERN)] = Field(
        description="Emitting service: 1 to 64 of [A-Za-z0-9._-]."
    )
    message: str = Field(description="The log line; capped (default 32 KiB of UTF-8).")
    trace_id: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$")] | None = Field(
        default=None, description="W3C trace id (32 hex digits)."
    )
    span_id: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{16}$")] | None = Field(
        default=None, description="W3C span id (16 hex digits)."
    )
    host: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    env: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    metadata: dict[str, Any] | None = Field(
        default=None,
        validation_alias=AliasChoices("metadata", "context"),
        description=(
            "Structured fields (`context` is accepted as an alias). Bounded depth, key count "
            "and size; keys may not start with `$` or contain `.`."
        ),
    )
    received_at: datetime | None = Field(
        default=None, description="Set by the gateway when it accepted the event."
    )

    @model_validator(mode="before")
    @classmethod
    def _metadata_or_context(cls, data: object) -> object:
        """Nulls mean "not given" (the event rule reads them the same way); ``context`` is an
        alias: a null one beside ``metadata`` (or the reverse) is no value, two values are an
        error."""
        if isinstance(data, dict) and (
            data.get("id", 0) is None or data.get("timestamp", 0) is None
        ):
            # null means "not given": the gateway assigns an id and the receive time.
            data = {k: v for k, v in data.items() if not (k in ("id", "timestamp") and v is None)}
        if isinstance(data, dict) and "metadata" in data and "context" in data:
            if data["context"] is None or data["metadata"] is None:
                data = dict(data)
                value = data.pop("context")
                if data["metadata"] is None:
                    data["metadata"] = value
            else:
                raise ValueError("send `metadata` or its alias `context`, not both")
        return data

    @field_validator("level", mode="before")
    @classmethod
    def _normalise_level(cls, value: object) -> object:
        if value is None:  # null means "not given", as for every other optional field
            return Level.INFO
        if isinstance(value, str):
            return Level.parse(value)
        return value

    @field_validator("timestamp", "received_at", mode="before")
    @classmethod
    def _rfc3339_or_unix(cls, value: object) -> object:
        """The event rule's reading of times (RFC 3339 strings, Unix numbers), not pydantic's
        broader one, so the documented model and the rule agree on every input."""
        return None if value is None else parse_time(value)

    @field_validator("timestamp")
    @classmethod
    def _timestamp_utc_in_range(cls, value: datetime, info: ValidationInfo) -> datetime:
        value = to_utc(value, "timestamp")
        if value < EARLIEST_TIMESTAMP:
            raise ValueError("timestamp is before 1970-01-01T00:00:00Z")
        skew = _limits(info).max_future_skew
        if value > utcnow() + skew:
            raise ValueError(f"timestamp is more than {skew} in the future")
        return value

    @field_validator("received_at")
    @classmethod
    def _received_at_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else to_utc(value, "received_at")

    @field_validator("message")
    @classmethod
    def _message_size(cls, value: str, info: ValidationInfo) -> str:
        cap = _limits(info).max_message_bytes
        # len(str) <= cap/4 can never exceed the cap in UTF-8: skip encoding short messages.
        if len(value) * 4 > cap and len(value.encode("utf-8", "surrogatepass")) > cap:
            raise ValueError(f"message is longer than {cap} bytes")
        if "\x00" in value:
            raise ValueError(_NUL_TEXT)
        return value

    @field_validator("host", "env")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError(_NUL_TEXT)
        return value

    @field_validator("trace_id", "span_id")
    @classmethod
    def _lower_hex_not_zero(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.strip("0") == "":
            raise ValueError("an all-zero id is invalid in W3C trace context")
        return value.lower()

    @field_validator("metadata")
    @classmethod
    def _metadata_bounded(
        cls, value: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        if value is None:
            return None
        limits = _limits(info)
        keys = check_metadata(value, limits)
        if keys > limits.max_metadata_keys:
            raise ValueError(f"metadata has {keys} keys; at most {limits.max_metadata_keys}")
        try:
            size = len(orjson.dumps(value))
        except TypeError as exc:
            raise ValueError(f"metadata is not JSON-serialisable: {exc}") from None
        if size > limits.max_metadata_bytes:
            raise ValueError(f"metadata is {size} bytes; at most {limits.max_metadata_bytes}")
        return value

    @property
    def when(self) -> datetime:
        """The event's time (named as on :class:`~logriver_common.event_rule.Event`)."""
        return self.timestamp

    def to_json(self) -> bytes:
        """The Kafka record value: the normalised event as compact JSON."""
        # exclude_none drops unset optional fields; nulls inside metadata are kept (data).
        return self.model_dump_json(exclude_none=True).encode()


_NUL_TEXT = "text may not contain NUL (U+0000)"
# Numbers are Unix time: seconds, or milliseconds past this (pydantic's convention).
_MILLIS_FROM = 2e10


def parse_time(value: object) -> datetime:
    """An RFC 3339 date-time string or a Unix time number (seconds, or milliseconds).

    msgspec's parser is the strict one the rule decodes with: a date alone, digits in a
    string or an offset past 24 h are errors. Raises ``ValueError``.
    """
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return msgspec.convert(value, datetime)
        except msgspec.ValidationError:
            raise ValueError("not an RFC 3339 date-time") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not abs(value) < 1e14:  # also refuses NaN; past year 5138 in milliseconds
            raise ValueError("time is outside the years 1970 to 9999")
        seconds = value / 1000 if abs(value) > _MILLIS_FROM else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError("time is outside the years 1970 to 9999") from None
    raise ValueError("time must be an RFC 3339 string or a Unix time number")


def to_utc(value: datetime, name: str) -> datetime:
    """An aware UTC datetime; naive values are taken as UTC (most log libraries mean that).

    Converting a stamp at the edge of the calendar (year 1 at +01:00, year 9999
    at -01:00) leaves ``datetime``'s range: that is the sender's error, not ours.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"{name} is outside the years 1970 to 9999 once converted to UTC"
        ) from None


def _check_scalar(value: object) -> None:
    """Scalars MongoDB can store and every consumer can re-encode as JSON."""
    kind = type(value)
    if kind is int:
        if not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
            raise ValueError(
                f"metadata integer {value} is outside signed 64-bit, the widest integer "
                "MongoDB stores; send it as a string"
            )
    elif kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise ValueError("metadata numbers must be finite (no NaN or Infinity)")
    elif kind is str and "\x00" in value:  # type: ignore[operator]
        raise ValueError(_NUL_TEXT)


# Metadata keys repeat from event to event: remember the ones already checked (bounded).
_GOOD_KEYS: set[object] = set()
_MAX_GOOD_KEYS = 10_000


def _check_key(key: object) -> None:
    # MongoDB reads `$` prefixes as operators and `.` as paths: neither may reach storage.
    if (
        not isinstance(key, str)
        or not 0 < len(key) <= 128
        or key[0] == "$"
        or "." in key
        or "\x00" in key
    ):
        raise ValueError(
            f"metadata key {str(key)[:130]!r} is invalid: keys are 1 to 128 characters, may "
            "not start with '$' or contain '.' or NUL"
        )
    if len(_GOOD_KEYS) >= _MAX_GOOD_KEYS:
        _GOOD_KEYS.clear()
    _GOOD_KEYS.add(key)


def _check_item(item: object, depth: int, pending: list[tuple[object, int]]) -> None:
    kind = type(item)
    if kind is str:
        if "\x00" in item:  # type: ignore[operator]
            raise ValueError(_NUL_TEXT)
    elif kind is dict or kind is list or isinstance(item, dict | list):
        pending.append((item, depth))
    elif item is not None and kind is not bool:
        _check_scalar(item)


def check_metadata(root: dict[str, Any], limits: EventLimits) -> int:
    """Validate nesting, keys and scalars; return the number of keys seen.

    Depth counts containers: the metadata object is level 1. Iterative (a
    hostile depth cannot exhaust the stack), and it runs for every event on
    every hop, so known-good keys are a set lookup.
    """
    keys = 0
    good = _GOOD_KEYS
    max_depth = limits.max_metadata_depth
    pending: list[tuple[object, int]] = [(root, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > max_depth:
            raise ValueError(f"metadata is nested deeper than {max_depth} levels")
        if type(value) is dict:
            keys += len(value)
            for key, item in value.items():
                if key not in good:
                    _check_key(key)
                # Text and in-range integers pass here: a call per item costs more than
                # the check. Anything else, or a bad one, goes to _check_item.
                kind = type(item)
                if (kind is str and "\x00" not in item) or (
                    kind is int and INT64_MIN <= item <= INT64_MAX
                ):
                    continue
                _check_item(item, depth + 1, pending)
        else:
            assert isinstance(value, list)  # noqa: S101 - only containers are queued
            for item in value:
                _check_item(item, depth + 1, pending)
    return keys
