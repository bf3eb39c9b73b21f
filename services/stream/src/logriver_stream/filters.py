"""Server-side filters: the wire shape (:class:`FilterSpec`) and its compiled form.

Query string: ``service`` (repeatable), ``level`` (minimum), ``q`` (substring,
case-insensitive), ``regex`` (on the message), ``trace_id``, and
``meta.<key>=<value>`` (equality on metadata; ``meta.a.b`` reaches into nested
objects). WebSocket clients send the same fields as JSON. All conditions must
hold.

Regexes are user input evaluated against every event, so they are bounded
twice. Their length is capped, and they run on the ``regex`` package with a
per-event time budget: a pattern that backtracks catastrophically (``(a|aa)+$``
on a long line) raises ``TimeoutError`` after a few milliseconds instead of
freezing the event loop that serves every other client. A subscriber whose
pattern times out is closed with ``regex_timeout``: a pattern that was slow once
will be slow again, and the instance must not keep paying for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import orjson

# No stubs ship for `regex`; its use is confined to this module.
import regex  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from logriver_common.event import Level
from logriver_stream.records import StreamRecord

MAX_SERVICES = 50
MAX_META = 20
MAX_TEXT = 256
_META_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,128}(\.[A-Za-z0-9_\-]{1,128}){0,4}$")
_SERVICE = r"^[A-Za-z0-9._\-]{1,64}$"

# Query parameters that configure the stream rather than the filter.
CONTROL_PARAMS = frozenset({"token", "resume", "since"})
_SINGLE_PARAMS = frozenset({"level", "q", "regex", "trace_id", *CONTROL_PARAMS})


class FilterError(ValueError):
    """A filter the server will not run; ``detail`` lists what is wrong."""

    def __init__(self, detail: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{d['param']}: {d['msg']}" for d in detail))
        self.detail = detail


class RegexTimeout(Exception):
    """A subscriber's regex exceeded its per-event time budget."""


class FilterSpec(BaseModel):
    """A filter as clients send it (query string or WebSocket JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: list[Annotated[str, Field(pattern=_SERVICE)]] = Field(
        default_factory=list, max_length=MAX_SERVICES
    )
    level: str | None = None
    q: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    regex: str | None = Field(default=None, min_length=1, max_length=4096)
    trace_id: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{32}$")
    meta: dict[str, Annotated[str, Field(max_length=MAX_TEXT)]] = Field(
        default_factory=dict, max_length=MAX_META
    )

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str | None) -> str | None:
        return None if value is None else Level.parse(value).value

    @field_validator("meta")
    @classmethod
    def _meta_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _META_KEY.match(key):
                raise ValueError(
                    f"metadata key {key!r} is invalid: use [A-Za-z0-9_-], dots for nesting"
                )
        return value


@dataclass(frozen=True, slots=True)
class RegexLimits:
    max_length: int
    timeout_s: float


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        param = loc[0] if loc else "filter"
        if param == "meta" and len(loc) > 1:
            param = f"meta.{loc[1]}"
        out.append({"param": param, "msg": str(err.get("msg", "invalid"))})
    return out


def spec_from_json(data: Any) -> FilterSpec:
    try:
        return FilterSpec.model_validate(data)
    except ValidationError as exc:
        raise FilterError(_errors(exc)) from None


def spec_from_query(items: Iterable[tuple[str, str]]) -> tuple[FilterSpec, dict[str, str]]:
    """The filter and the control parameters (token, resume, since) from a query string.

    Unknown parameters are rejected, so a misspelt filter is an error the user
    sees instead of a stream that silently shows everything.
    """
    services: list[str] = []
    meta: dict[str, str] = {}
    single: dict[str, str] = {}
    problems: list[dict[str, str]] = []
    for name, value in items:
        if name == "service":
            services.append(value)
        elif name.startswith("meta."):
            if name[5:] in meta:
                problems.append({"param": name, "msg": "given more than once"})
            meta[name[5:]] = value
        elif name in _SINGLE_PARAMS:
            if name in single:
                problems.append({"param": name, "msg": "given more than once"})
            single[name] = value
        else:
            problems.append({"param": name[:64], "msg": "unknown parameter"})
    if problems:
        raise FilterError(problems)
    control = {k: v for k, v in single.items() if k in CONTROL_PARAMS}
    fields: dict[str, Any] = {k: v for k, v in single.items() if k not in CONTROL_PARAMS}
    return spec_from_json({**fields, "service": services, "meta": meta}), control


def _meta_value(metadata: dict[str, Any] | None, path: tuple[str, ...]) -> str | None:
    value: Any = metadata
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
        if value is None:
            return None
    if isinstance(value, str):
        return value
    # Numbers and booleans compare by their JSON spelling: meta.attempt=3, meta.ok=true.
    return orjson.dumps(value).decode()


class Filter:
    """A compiled :class:`FilterSpec`; ``matches`` runs on the hot path."""

    __slots__ = (
        "_meta",
        "_min_severity",
        "_q",
        "_regex",
        "_timeout",
        "services",
        "spec",
        "trace_id",
    )

    def __init__(self, spec: FilterSpec, limits: RegexLimits) -> None:
        self.spec = spec
        self.services: frozenset[str] | None = frozenset(spec.service) or None
        self._min_severity = Level(spec.level).severity if spec.level else 0
        self._q = spec.q.casefold() if spec.q else None
        self.trace_id = spec.trace_id.lower() if spec.trace_id else None
        self._meta = [(tuple(k.split(".")), v) for k, v in spec.meta.items()]
        self._timeout = limits.timeout_s
        self._regex: regex.Pattern[str] | None = None
        if spec.regex is not None:
            if len(spec.regex) > limits.max_length:
                raise FilterError(
                    [{"param": "regex", "msg": f"longer than {limits.max_length} characters"}]
                )
            try:
                self._regex = regex.compile(spec.regex)
            except (regex.error, ValueError, OverflowError, RecursionError) as exc:
                raise FilterError([{"param": "regex", "msg": f"invalid pattern: {exc}"}]) from None

    def matches(self, record: StreamRecord) -> bool:
        """Whether ``record`` passes; raises :class:`RegexTimeout` for a runaway pattern."""
        if self.services is not None and record.service not in self.services:
            return False
        if record.severity < self._min_severity:
            return False
        if self.trace_id is not None and record.trace_id != self.trace_id:
            return False
        for path, expected in self._meta:
            if _meta_value(record.metadata, path) != expected:
                return False
        if self._q is not None and self._q not in record.folded_message:
            return False
        if self._regex is not None:
            try:
                return self._regex.search(record.message, timeout=self._timeout) is not None
            except TimeoutError:
                raise RegexTimeout(
                    f"regex took longer than {self._timeout * 1000:g} ms on one event"
                ) from None
        return True

    def describe(self) -> dict[str, Any]:
        return self.spec.model_dump(exclude_defaults=True)
