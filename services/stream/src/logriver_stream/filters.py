"""Server-side filters: the wire shape (:class:`FilterSpec`) and its compiled form.

Query string: ``service`` (repeatable), ``level`` (minimum), ``q`` (substring,
case-insensitive), ``regex`` (on the message), ``trace_id``, and
``meta.<key>=<value>`` (equality on metadata; ``meta.a.b`` reaches into nested
objects). WebSocket clients send the same fields as JSON. All conditions must
hold.

Regexes are user input evaluated against every event on the event loop that
serves every client, so they run on RE2, whose matching is linear in the
message (no backtracking: ``(a|aa)+$`` is as cheap as ``a+$``), and are
bounded at compile time (:class:`RegexCompiler`):

* the pattern length is capped (``regex_max_length``);
* RE2 compiles under a memory bound (``regex_max_mem``, 1 MiB), so a pattern
  such as ``\\pL{1000}`` fails in a few milliseconds instead of allocating
  gigabytes; nested counted repeats beyond 1000 in total
  (``((a{1,100}){1,100}){1,100}``) are refused by RE2's parser at once;
* the compiled program is capped (``regex_max_program_size`` instructions),
  because the cost of a match that overflows RE2's DFA cache grows with it.

Anything RE2 rejects or that is too large is ``invalid_filter`` (400) at
subscription time. Compiling holds the GIL (the RE2 binding does not release
it), so a worker thread would not keep the event loop free; the memory bound
is what bounds compile time (about 6 ms at worst, measured), an LRU cache makes
repeats free, and the time is charged to the key's regex budget (budget.py),
which also bounds what matching costs.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import orjson
import re2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from logriver_common.event import SERVICE_PATTERN, Level
from logriver_stream.records import StreamRecord

MAX_SERVICES = 50
MAX_META = 20
MAX_TEXT = 256
_META_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,128}(\.[A-Za-z0-9_\-]{1,128}){0,4}$")
_SERVICE = SERVICE_PATTERN

# Query parameters that configure the stream rather than the filter.
CONTROL_PARAMS = frozenset({"token", "resume", "since"})
_SINGLE_PARAMS = frozenset({"level", "q", "regex", "trace_id", *CONTROL_PARAMS})


class FilterError(ValueError):
    """A filter the server will not run; ``detail`` lists what is wrong."""

    def __init__(self, detail: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{d['param']}: {d['msg']}" for d in detail))
        self.detail = detail


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
    max_length: int = 256
    max_program_size: int = 1_000
    max_mem: int = 1 << 20


if TYPE_CHECKING:
    # The compiled-pattern class is private in the binding (and not generic at run time).
    Regex: TypeAlias = re2._Regexp[str]


class RegexCompiler:
    """Compiles user patterns with RE2 under :class:`RegexLimits`; a small LRU cache.

    Refusals are cached too, so a client repeating a rejected pattern costs a
    dictionary lookup.
    """

    def __init__(self, limits: RegexLimits, *, cache_size: int = 256) -> None:
        self.limits = limits
        self._cache_size = cache_size
        self._cache: OrderedDict[str, Regex | str] = OrderedDict()
        self._options = re2.Options()
        self._options.max_mem = limits.max_mem
        self._options.log_errors = False  # refusals are answered, not logged to stderr
        self._options.never_capture = True  # filters only ask "does it match?"

    def cached(self, pattern: str) -> bool:
        return pattern in self._cache

    def compile(self, pattern: str) -> Regex:
        """The compiled pattern; raises :class:`FilterError` naming the ``regex`` param."""
        if len(pattern) > self.limits.max_length:
            raise FilterError(
                [{"param": "regex", "msg": f"longer than {self.limits.max_length} characters"}]
            )
        result = self._cache.get(pattern)
        if result is None:
            result = self._compile(pattern)
            self._cache[pattern] = result
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(pattern)
        if isinstance(result, str):
            raise FilterError([{"param": "regex", "msg": result}])
        return result

    def _compile(self, pattern: str) -> Regex | str:
        try:
            compiled = re2.compile(pattern, self._options)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else "invalid"
            if isinstance(reason, bytes):
                reason = reason.decode(errors="replace")
            if "pattern too large" in str(reason):
                return "too costly: the compiled pattern exceeds the memory limit"
            return f"invalid pattern (RE2 syntax): {reason}"
        except (ValueError, TypeError, UnicodeError, OverflowError) as exc:
            return f"invalid pattern: {exc}"
        if compiled.programsize > self.limits.max_program_size:
            return (
                f"too costly: compiles to {compiled.programsize} instructions "
                f"(at most {self.limits.max_program_size}); use smaller counted repeats"
            )
        return compiled


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
    """A compiled :class:`FilterSpec`; ``matches`` runs on the hot path.

    The hub calls :meth:`matches_fields` and :meth:`matches_regex` separately
    so that only the regex, the part that can cost, is charged to the key's
    budget.
    """

    __slots__ = (
        "_meta",
        "_min_severity",
        "_q",
        "regex",
        "service_only",
        "services",
        "spec",
        "trace_id",
    )

    def __init__(self, spec: FilterSpec, regex: Regex | None = None) -> None:
        if (spec.regex is None) != (regex is None):
            raise ValueError("pass the compiled regex of spec.regex (and only then)")
        self.spec = spec
        self.services: frozenset[str] | None = frozenset(spec.service) or None
        self._min_severity = Level(spec.level).severity if spec.level else 0
        self._q = spec.q.casefold() if spec.q else None
        self.trace_id = spec.trace_id.lower() if spec.trace_id else None
        self._meta = [(tuple(k.split(".")), v) for k, v in spec.meta.items()]
        self.regex = regex
        # Nothing but (at most) services besides the regex: the hub's per-service
        # index has already decided matches_fields, so it skips the call.
        self.service_only = (
            self._min_severity == 0 and self._q is None and self.trace_id is None and not self._meta
        )

    def matches_fields(self, record: StreamRecord) -> bool:
        """Every condition except the regex (all cheap and bounded)."""
        if self.services is not None and record.service not in self.services:
            return False
        if record.severity < self._min_severity:
            return False
        if self.trace_id is not None and record.trace_id != self.trace_id:
            return False
        for path, expected in self._meta:
            if _meta_value(record.metadata, path) != expected:
                return False
        return self._q is None or self._q in record.folded_message

    def matches_regex(self, record: StreamRecord) -> bool:
        if self.regex is None:
            return True
        # Bytes: RE2 works on UTF-8 and skips the offset bookkeeping of str matches.
        text = record.message.encode("utf-8", "surrogatepass")
        return self.regex.search(text) is not None

    def matches(self, record: StreamRecord) -> bool:
        return self.matches_fields(record) and self.matches_regex(record)

    def describe(self) -> dict[str, Any]:
        return self.spec.model_dump(exclude_defaults=True)
