"""The log event: the contract between clients, the gateway, Kafka and every consumer.

The gateway validates what clients send with :class:`LogEvent`; the writer,
stream and alerter validate every Kafka record again with the same model,
because nothing that reaches a topic is trusted. Limits travel in the
validation context (:class:`EventLimits`) so each service can configure them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import orjson
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
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
_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"
_SERVICE_PATTERN = r"^[A-Za-z0-9._\-]{1,64}$"


def _limits(info: ValidationInfo) -> EventLimits:
    context = info.context
    if isinstance(context, dict):
        limits = context.get("limits")
        if isinstance(limits, EventLimits):
            return limits
    return DEFAULT_LIMITS


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
    service: Annotated[str, Field(pattern=_SERVICE_PATTERN)] = Field(
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

    @field_validator("level", mode="before")
    @classmethod
    def _normalise_level(cls, value: object) -> object:
        if isinstance(value, str):
            return Level.parse(value)
        return value

    @field_validator("timestamp")
    @classmethod
    def _timestamp_utc_not_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        # A timestamp without an offset is taken as UTC, the convention of most log libraries.
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        skew = _limits(info).max_future_skew
        if value > utcnow() + skew:
            raise ValueError(f"timestamp is more than {skew} in the future")
        return value

    @field_validator("received_at")
    @classmethod
    def _received_at_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("message")
    @classmethod
    def _message_size(cls, value: str, info: ValidationInfo) -> str:
        cap = _limits(info).max_message_bytes
        # len(str) <= cap/4 can never exceed the cap in UTF-8: skip encoding short messages.
        if len(value) * 4 > cap and len(value.encode("utf-8", "surrogatepass")) > cap:
            raise ValueError(f"message is longer than {cap} bytes")
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
        keys = _check_metadata(value, limits)
        if keys > limits.max_metadata_keys:
            raise ValueError(f"metadata has {keys} keys; at most {limits.max_metadata_keys}")
        try:
            size = len(orjson.dumps(value))
        except TypeError as exc:
            raise ValueError(f"metadata is not JSON-serialisable: {exc}") from None
        if size > limits.max_metadata_bytes:
            raise ValueError(f"metadata is {size} bytes; at most {limits.max_metadata_bytes}")
        return value

    def to_json(self) -> bytes:
        """The Kafka record value: the normalised event as compact JSON."""
        # exclude_none drops unset optional fields; nulls inside metadata are kept (data).
        return self.model_dump_json(exclude_none=True).encode()


def _check_metadata(root: dict[str, Any], limits: EventLimits) -> int:
    """Validate nesting and keys; return the number of keys seen.

    Depth counts containers: the metadata object is level 1. Iterative, and
    never descends into scalars, because this runs for every event ingested.
    """
    keys = 0
    pending: list[tuple[object, int]] = [(root, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > limits.max_metadata_depth:
            raise ValueError(f"metadata is nested deeper than {limits.max_metadata_depth} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                # MongoDB reads `$` prefixes as operators and `.` as paths: neither may
                # reach storage. (Inlined: a call per key is measurable at gateway rates.)
                if (
                    not isinstance(key, str)
                    or not 0 < len(key) <= 128
                    or key[0] == "$"
                    or "." in key
                    or "\x00" in key
                ):
                    raise ValueError(
                        f"metadata key {key!r} is invalid: keys are 1 to 128 characters, may "
                        "not start with '$' or contain '.'"
                    )
                keys += 1
                if isinstance(item, dict | list):
                    pending.append((item, depth + 1))
        else:
            assert isinstance(value, list)  # noqa: S101 - only containers are queued
            pending.extend((item, depth + 1) for item in value if isinstance(item, dict | list))
    return keys
