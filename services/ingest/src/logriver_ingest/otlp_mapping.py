"""OTLP log records → the event objects the JSON API accepts.

The mapper never refuses a record: it shapes each one into the JSON API's dict
(``service, level, message, timestamp, trace_id, span_id, host, env, metadata``)
and the gateway's one rule (``validate_items``) then accepts or rejects it,
with the same limits, time policy and redaction as a JSON event.

Mapping (documented in docs/ingest.md, "OpenTelemetry (OTLP)"):

- resource ``service.name`` → ``service``, every character outside
  ``[A-Za-z0-9._-]`` replaced by ``_``, cut to 64; absent → ``unknown_service``
  (OpenTelemetry's own default); ``host.name`` → ``host``;
  ``deployment.environment.name`` (or the older ``deployment.environment``) → ``env``;
- severity number → ``level`` (TRACE/DEBUG → DEBUG, INFO, WARN → WARNING,
  ERROR, FATAL → CRITICAL); without a number the severity text, if it is a
  known level name; else INFO. A text that says something else is kept as
  ``metadata.severity_text``;
- a string body → ``message``; any other body → its JSON text as ``message``
  and the value itself as ``metadata.body``;
- record attributes → top-level ``metadata`` keys; resource attributes (minus
  the ones mapped above) → ``metadata.resource``; scope name, version and
  attributes → ``metadata.scope``. Keys are stored flat with ``.`` replaced by
  ``_`` (``http.method`` → ``http_method``), a leading ``$`` by ``_``, NUL
  removed, cut to 128 characters; NUL inside string values becomes U+FFFD; a
  record attribute named like one of the mapper's own keys (``resource``,
  ``scope``, ``body``, ...) gets a trailing ``_``;
- ``trace_id``/``span_id`` bytes → lowercase hex; empty or all-zero → absent;
  a wrong length → absent (and counted as a warning);
- ``time_unix_nano``, falling back to ``observed_time_unix_nano``; neither →
  the gateway's receive time;
- ``id``: a UUIDv8 from the record's time (milliseconds first, so ids stay
  time-ordered like the gateway's UUIDv7s) and a hash of the resource, scope and
  record, so an exporter's retry of the same record is stored once.

Metadata limits (depth, key count, bytes) are met by shaping, not by rejecting
the record, as OpenTelemetry SDKs do with their own attribute limits: a value
nested deeper than allowed becomes its JSON text; an attribute that would pass
the key or byte budget is dropped (record attributes are kept first, then the
body, the resource and the scope) and counted in
``metadata.dropped_attributes_count`` (which also carries the sender's own
count). The request's answer reports such records as a warning in
``partial_success.error_message``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from logriver_common.event import EventLimits, Level

UNKNOWN_SERVICE = "unknown_service"
SERVICE_NAME = "service.name"
HOST_NAME = "host.name"
ENV_NAMES = ("deployment.environment.name", "deployment.environment")
# The mapper's own top-level metadata keys; a record attribute with one of these names
# gets a trailing underscore.
RESERVED_KEYS = frozenset(
    {"resource", "scope", "body", "severity_text", "event_name", "dropped_attributes_count"}
)
MAX_KEY_CHARS = 128
_NOT_SERVICE_CHAR = re.compile(r"[^A-Za-z0-9._\-]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Warning kinds, counted per request and reported in partial_success.error_message.
DROPPED_ATTRIBUTES = "attributes dropped (metadata key or size limit)"
FLATTENED_VALUES = "values nested past the depth limit stored as JSON text"
INVALID_IDS = "trace_id/span_id of a wrong length ignored"


def level_of(number: int, text: str) -> tuple[Level, bool]:
    """The level, and whether ``text`` says the same (else it is kept in metadata)."""
    level: Level | None = None
    if 1 <= number <= 8:
        level = Level.DEBUG
    elif 9 <= number <= 12:
        level = Level.INFO
    elif 13 <= number <= 16:
        level = Level.WARNING
    elif 17 <= number <= 20:
        level = Level.ERROR
    elif 21 <= number <= 24:
        level = Level.CRITICAL
    parsed: Level | None = None
    if text:
        try:
            parsed = Level.parse(text)
        except ValueError:
            parsed = None
    if level is None:
        level = parsed or Level.INFO
    return level, not text or parsed is level


def clean_key(key: str) -> str:
    """A metadata key MongoDB and the event rule accept (no ``.``, no ``$`` first, no NUL)."""
    key = key.replace(".", "_").replace("\x00", "")
    if key.startswith("$"):
        key = "_" + key[1:]
    return key[:MAX_KEY_CHARS] or "_"


def service_name(value: str | None) -> str:
    if not value:
        return UNKNOWN_SERVICE
    return _NOT_SERVICE_CHAR.sub("_", value)[:64]


def plain(value: AnyValue) -> Any:
    """An AnyValue as JSON-compatible Python, without limits (the protobuf decoders bound
    its nesting). Bytes become base64 (as in OTLP/JSON); non-finite doubles their names."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        text: str = value.string_value
        # NUL is legal in protobuf strings, refused by the event rule: U+FFFD keeps the rest.
        return text.replace("\x00", "\ufffd") if "\x00" in text else text
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return _double(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind == "array_value":
        return [plain(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {clean_key(kv.key): plain(kv.value) for kv in value.kvlist_value.values}
    return None


def s(text: str) -> AnyValue:
    return AnyValue(string_value=text)


def _double(number: float) -> float | str:
    if math.isfinite(number):
        return number
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


@dataclass(slots=True)
class _Shaped:
    """A value shaped for metadata at a given depth, with its key count."""

    value: Any
    keys: int
    flattened: int


def shape(value: AnyValue, depth: int, max_depth: int) -> _Shaped:
    """``value`` as it will sit at container depth ``depth`` (metadata itself is 1):
    a container that would sit deeper than ``max_depth`` becomes its JSON text."""
    kind = value.WhichOneof("value")
    if kind == "array_value" or kind == "kvlist_value":
        if depth > max_depth:
            return _Shaped(orjson.dumps(plain(value)).decode(), 0, 1)
        keys = 0
        flattened = 0
        if kind == "array_value":
            items: list[Any] = []
            for item in value.array_value.values:
                shaped = shape(item, depth + 1, max_depth)
                items.append(shaped.value)
                keys += shaped.keys
                flattened += shaped.flattened
            return _Shaped(items, keys, flattened)
        mapping: dict[str, Any] = {}
        for kv in value.kvlist_value.values:
            shaped = shape(kv.value, depth + 1, max_depth)
            mapping[clean_key(kv.key)] = shaped.value
            keys += 1 + shaped.keys
            flattened += shaped.flattened
        return _Shaped(mapping, keys, flattened)
    return _Shaped(plain(value), 0, 0)


@dataclass(slots=True)
class _Entry:
    """One metadata member, ready to be admitted against the budget."""

    key: str
    value: Any
    keys: int  # its own key plus the keys inside it
    size: int  # bytes of `"key":value,` in the stored JSON
    flattened: int


def _entry(key: str, shaped: _Shaped) -> _Entry:
    size = len(orjson.dumps({key: shaped.value})) - 1  # minus the braces, plus a comma
    return _Entry(key, shaped.value, 1 + shaped.keys, size, shaped.flattened)


def _entries(attributes: Any, depth: int, max_depth: int, skip: frozenset[str]) -> list[_Entry]:
    out = []
    for kv in attributes:
        if kv.key in skip:
            continue
        out.append(_entry(clean_key(kv.key), shape(kv.value, depth, max_depth)))
    return out


class _Budget:
    """What the metadata may still hold; an entry that does not fit is dropped and counted.

    Conservative (every entry is charged a comma), so what it admits the event rule accepts.
    """

    def __init__(self, limits: EventLimits) -> None:
        self.keys = limits.max_metadata_keys
        self.size = limits.max_metadata_bytes - 2  # the outer braces
        self.dropped = 0
        self.flattened = 0
        # Containers (metadata.resource, metadata.scope) need a second level.
        self.nesting = limits.max_metadata_depth >= 2

    def admit(self, entry: _Entry) -> bool:
        if entry.keys > self.keys or entry.size > self.size:
            self.dropped += 1
            return False
        self.keys -= entry.keys
        self.size -= entry.size
        self.flattened += entry.flattened
        return True

    def fill(self, target: dict[str, Any], entries: list[_Entry]) -> None:
        for entry in entries:
            if self.admit(entry):
                target[entry.key] = entry.value

    def open(self, key: str, value_chars: int = 2) -> bool:
        """Room for a member ``"key":<value_chars characters>,`` (an empty container: 2)."""
        size = len(orjson.dumps(key)) + value_chars + 2
        if self.keys < 1 or self.size < size:
            return False
        self.keys -= 1
        self.size -= size
        return True


@dataclass(slots=True)
class _Resource:
    service: str
    host: str | None
    env: str | None
    entries: list[_Entry]
    digest: bytes


@dataclass(slots=True)
class _Scope:
    entries: list[_Entry]
    digest: bytes


@dataclass(slots=True)
class Mapped:
    """The request's records as JSON API events, in request order."""

    items: list[dict[str, Any]] = field(default_factory=list)
    warnings: Counter[str] = field(default_factory=Counter)


def count_records(request: ExportLogsServiceRequest) -> int:
    return sum(
        len(scope_logs.log_records)
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
    )


def _string_attribute(attributes: Any, name: str) -> str | None:
    for kv in attributes:
        if kv.key == name and kv.value.WhichOneof("value") == "string_value":
            return str(kv.value.string_value)
    return None


def _resource(attributes: Any, limits: EventLimits) -> _Resource:
    raw_service = _string_attribute(attributes, SERVICE_NAME)
    service = service_name(raw_service)
    skip = set()
    if raw_service == service:
        skip.add(SERVICE_NAME)  # kept in metadata only when it had to be changed
    host = _string_attribute(attributes, HOST_NAME)
    if host is not None and 0 < len(host) <= 255 and "\x00" not in host:
        skip.add(HOST_NAME)
    else:
        host = None
    env = None
    for name in ENV_NAMES:
        candidate = _string_attribute(attributes, name)
        if candidate is not None and 0 < len(candidate) <= 64 and "\x00" not in candidate:
            env = candidate
            skip.add(name)
            break
    # Resource attributes sit in metadata.resource: their containers start at depth 3.
    entries = _entries(attributes, 3, limits.max_metadata_depth, frozenset(skip))
    digest = _digest(attributes)
    return _Resource(service, host, env, entries, digest)


def _scope(scope: Any, limits: EventLimits) -> _Scope:
    entries: list[_Entry] = []
    if scope.name:
        entries.append(_entry("name", _Shaped(plain(s(scope.name)), 0, 0)))
    if scope.version:
        entries.append(_entry("version", _Shaped(plain(s(scope.version)), 0, 0)))
    entries.extend(_entries(scope.attributes, 3, limits.max_metadata_depth, frozenset()))
    return _Scope(entries, hashlib.sha256(scope.SerializeToString(deterministic=True)).digest())


def _digest(attributes: Any) -> bytes:
    hasher = hashlib.sha256()
    for kv in attributes:
        hasher.update(kv.SerializeToString(deterministic=True))
    return hasher.digest()


def _hex_id(raw: bytes, size: int) -> tuple[str | None, bool]:
    """(hex id or None, whether the id was present but of a wrong length)."""
    if not raw or not raw.strip(b"\x00"):
        return None, False
    if len(raw) != size:
        return None, True
    return raw.hex(), False


def _timestamp(nanos: int) -> str:
    return (_EPOCH + timedelta(microseconds=nanos // 1000)).isoformat()


def stable_id(nanos: int, resource: bytes, scope: bytes, record: LogRecord) -> str:
    """A UUIDv8: 48 bits of the record's Unix milliseconds, then 74 bits of a hash."""
    hasher = hashlib.sha256(resource)
    hasher.update(scope)
    hasher.update(record.SerializeToString(deterministic=True))
    rest = int.from_bytes(hasher.digest()[:10], "big") >> 6  # 74 bits
    millis = (nanos // 1_000_000) & ((1 << 48) - 1)
    value = (millis << 80) | (8 << 76) | ((rest >> 62) << 64) | (0b10 << 62) | (rest & (2**62 - 1))
    return str(uuid.UUID(int=value))


def map_record(
    record: LogRecord, resource: _Resource, scope: _Scope, limits: EventLimits, mapped: Mapped
) -> dict[str, Any]:
    item: dict[str, Any] = {"service": resource.service}
    if resource.host is not None:
        item["host"] = resource.host
    if resource.env is not None:
        item["env"] = resource.env

    level, text_agrees = level_of(record.severity_number, record.severity_text)
    item["level"] = level.value

    nanos = record.time_unix_nano or record.observed_time_unix_nano
    if nanos:
        item["timestamp"] = _timestamp(nanos)
        item["id"] = stable_id(nanos, resource.digest, scope.digest, record)

    trace_id, bad_trace = _hex_id(record.trace_id, 16)
    span_id, bad_span = _hex_id(record.span_id, 8)
    if bad_trace or bad_span:
        mapped.warnings[INVALID_IDS] += 1
    if trace_id is not None:
        item["trace_id"] = trace_id
        if span_id is not None:
            item["span_id"] = span_id

    budget = _Budget(limits)
    metadata: dict[str, Any] = {}
    body_kind = record.body.WhichOneof("value") if record.HasField("body") else None
    if body_kind == "string_value":
        item["message"] = record.body.string_value
    elif body_kind is None:
        item["message"] = ""
    else:
        item["message"] = orjson.dumps(plain(record.body)).decode()

    # The sender's own count of dropped attributes is kept; ours is added to it.
    budget.open("dropped_attributes_count", 20)  # room for the counter (a uint32 sum)
    record_entries = _entries(record.attributes, 2, limits.max_metadata_depth, frozenset())
    for entry in record_entries:
        if entry.key in RESERVED_KEYS:
            entry.key += "_"
    budget.fill(metadata, record_entries)
    if body_kind is not None and body_kind != "string_value":
        budget.fill(metadata, [_entry("body", shape(record.body, 2, limits.max_metadata_depth))])
    if not text_agrees:
        budget.fill(
            metadata, [_entry("severity_text", _Shaped(plain(s(record.severity_text)), 0, 0))]
        )
    if record.event_name:
        budget.fill(metadata, [_entry("event_name", _Shaped(plain(s(record.event_name)), 0, 0))])
    for name, entries in (("resource", resource.entries), ("scope", scope.entries)):
        if not entries:
            continue
        if not budget.nesting or not budget.open(name):
            budget.dropped += len(entries)
            continue
        members: dict[str, Any] = {}
        budget.fill(members, entries)
        if members:
            metadata[name] = members
    dropped = budget.dropped + record.dropped_attributes_count
    if dropped:
        metadata["dropped_attributes_count"] = dropped
    if budget.dropped:
        mapped.warnings[DROPPED_ATTRIBUTES] += 1
    if budget.flattened:
        mapped.warnings[FLATTENED_VALUES] += 1
    if metadata:
        item["metadata"] = metadata
    return item


def map_request(request: ExportLogsServiceRequest, limits: EventLimits) -> Mapped:
    mapped = Mapped()
    for resource_logs in request.resource_logs:
        resource = _resource(resource_logs.resource.attributes, limits)
        for scope_logs in resource_logs.scope_logs:
            scope = _scope(scope_logs.scope, limits)
            for record in scope_logs.log_records:
                mapped.items.append(map_record(record, resource, scope, limits, mapped))
    return mapped
