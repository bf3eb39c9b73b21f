"""Query-string parameters → a validated filter → a MongoDB filter document.

Operator injection is impossible by construction: parameters are read as plain
strings from a whitelist of names, every value is validated against a pattern
or parsed into a typed value (str, int, float, bool, datetime), and the filter
document is assembled here from literals. Nothing a client sends is ever used
as a key, an operator or a sub-document.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from bson.regex import Regex

from logriver_common.documents import LEVELS, levels_at_or_above
from logriver_common.event import SERVICE_NAME, Level
from logriver_common.indexes import words_of
from logriver_common.web.errors import ApiError
from logriver_query.settings import QuerySettings

Params = Mapping[str, Sequence[str]]
Order = Literal["desc", "asc"]

SERVICE = SERVICE_NAME
TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
EVENT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
# Stricter than what the event model accepts as a key: no dots (no nested paths),
# no `$` (no operators), nothing that needs escaping in a field path.
META_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
RELATIVE = re.compile(r"^(\d{1,7})(s|m|h|d|w)$")
INT = re.compile(r"^-?\d{1,18}$")
FLOAT = re.compile(r"^-?\d{1,18}\.\d{1,18}$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_SERVICES = 100
MAX_META_FILTERS = 10
MAX_VALUE_LENGTH = 256

# Parameters every filtered endpoint accepts; endpoints add their own.
FILTER_PARAMS = frozenset(
    {"service", "level", "since", "until", "host", "env", "trace_id", "q", "match"}
)


def bad_request(detail: str, error: str = "bad_request") -> ApiError:
    return ApiError(400, error, detail)


def too_broad(detail: str) -> ApiError:
    return ApiError(400, "query_too_broad", f"{detail}; narrow the time range or add filters")


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Half-open ``[since, until)``, both UTC."""

    since: datetime
    until: datetime

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()


@dataclass(frozen=True, slots=True)
class LogFilter:
    window: TimeRange
    services: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    trace_id: str | None = None
    host: str | None = None
    env: str | None = None
    q: str | None = None
    meta: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # The time bounds as the client wrote them ("15m", an RFC 3339 time or None):
    # they identify the query for cursors and cache keys; `window` is them resolved.
    since_raw: str | None = None
    until_raw: str | None = None
    # `match=word`: q's whole words (each must occur in the message as a word).
    words: tuple[str, ...] = ()
    # The templates (hashes) whose words include them, from the template dictionary
    # (word_search.resolve); None while not looked up, or when a scan answers instead.
    templates: tuple[int, ...] | None = None

    def identity(self) -> dict[str, Any]:
        """The normalised filter set, independent of parameter order and spelling."""
        return {
            "service": list(self.services),
            "level": list(self.levels),
            "trace_id": self.trace_id,
            "host": self.host,
            "env": self.env,
            "q": self.q,
            "meta": [[k, list(v)] for k, v in self.meta],
            "since": self.since_raw,
            "until": self.until_raw,
            # Only when set, so cursors and cache keys of every other query stay as they were.
            **({"words": list(self.words)} if self.words else {}),
        }

    def fingerprint(self) -> str:
        return hashlib.sha256(orjson.dumps(self.identity())).hexdigest()[:32]

    def to_mongo(self, window: TimeRange | None = None) -> dict[str, Any]:
        window = window or self.window
        query: dict[str, Any] = {"timestamp": {"$gte": window.since, "$lt": window.until}}
        if len(self.services) == 1:
            query["service"] = self.services[0]
        elif self.services:
            query["service"] = {"$in": list(self.services)}
        if len(self.levels) == 1:
            query["level"] = self.levels[0]
        elif self.levels and len(self.levels) < len(LEVELS):
            query["level"] = {"$in": list(self.levels)}
        for name in ("trace_id", "host", "env"):
            value = getattr(self, name)
            if value is not None:
                query[name] = value
        if self.words:
            query["message"] = {"$all": [word_pattern(word) for word in self.words]}
            if self.templates is not None:
                query["th"] = {"$in": list(self.templates)}
        elif self.q is not None:
            # A literal, case-insensitive substring: re.escape leaves no metacharacter,
            # so there is nothing to backtrack on (see docs/query.md for the measurement).
            query["message"] = {"$regex": re.escape(self.q), "$options": "i"}
        for key, values in self.meta:
            query[f"metadata.{key}"] = {"$in": [typed for v in values for typed in _typed(v)]}
        return query


def word_pattern(word: str) -> Regex[str]:
    """``word`` as a whole word, case-insensitive. Words are ``[0-9a-z_]+`` (parse_words), so
    there is nothing to escape and nothing to backtrack on."""
    return Regex(f"(?<![0-9a-z_]){word}(?![0-9a-z_])", "i")


def _typed(value: str) -> list[Any]:
    """The string itself plus the number or boolean it spells: `meta.attempt=3` finds 3 and "3"."""
    out: list[Any] = [value]
    if INT.match(value):
        out.append(int(value))
    elif FLOAT.match(value):
        out.append(float(value))
    elif value in ("true", "false"):
        out.append(value == "true")
    return out


def reject_unknown(params: Params, allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    for name in params:
        if name not in allowed and not name.startswith("meta."):
            shown = name if len(name) <= 64 else name[:64] + "…"
            raise bad_request(f"unknown parameter {shown!r}", "unknown_parameter")


def single(params: Params, name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise bad_request(f"`{name}` may be given once")
    value = values[0]
    if len(value) > MAX_VALUE_LENGTH * 4:
        raise bad_request(f"`{name}` is too long")
    return value


def parse_time(value: str, now: datetime, name: str) -> datetime:
    if value == "now":
        return now
    match = RELATIVE.match(value)
    if match:
        try:
            return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        except OverflowError:
            raise out_of_range(name) from None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(
            f"`{name}` must be RFC 3339 (2026-01-02T15:04:05Z) or relative (15m, 2h, 7d)"
        ) from None
    try:
        # 0001-01-01T00:00:00+01:00 is a valid datetime whose UTC instant is not.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise out_of_range(name) from None


def out_of_range(name: str) -> ApiError:
    return bad_request(f"`{name}` is out of range (UTC times from year 1 to 9999)", "invalid_range")


def parse_window(
    params: Params, settings: QuerySettings, now: datetime, *, text_search: bool
) -> tuple[TimeRange, str | None, str | None]:
    since_raw, until_raw = single(params, "since"), single(params, "until")
    until = parse_time(until_raw, now, "until") if until_raw else now
    if since_raw:
        since = parse_time(since_raw, now, "since")
    else:
        try:
            since = until - timedelta(seconds=settings.default_range_seconds)
        except OverflowError:
            raise out_of_range("until") from None
    if since >= until:
        raise bad_request("`since` must be before `until`", "invalid_range")
    window = TimeRange(since, until)
    if window.seconds > settings.max_range_days * 86_400:
        raise too_broad(f"the time range is longer than {settings.max_range_days} days")
    if text_search and window.seconds > settings.max_text_range_hours * 3600:
        raise too_broad(f"a text search (`q`) covers at most {settings.max_text_range_hours} hours")
    return window, since_raw, until_raw


def parse_levels(values: Sequence[str]) -> tuple[str, ...]:
    chosen: set[str] = set()
    for raw in values:
        for part in raw.split(","):
            text = part.strip()
            at_least = text.startswith(">=")
            try:
                level = Level.parse(text[2:] if at_least else text)
            except ValueError as exc:
                raise bad_request(f"`level`: {exc}") from None
            chosen.update(levels_at_or_above(level.value) if at_least else [level.value])
    return tuple(lv for lv in LEVELS if lv in chosen)


def parse_services(values: Sequence[str]) -> tuple[str, ...]:
    services = {part.strip() for raw in values for part in raw.split(",") if part.strip()}
    if len(services) > MAX_SERVICES:
        raise bad_request(f"at most {MAX_SERVICES} services per query")
    for service in services:
        if not SERVICE.match(service):
            raise bad_request("`service` must be 1 to 64 of [A-Za-z0-9._-]")
    return tuple(sorted(services))


def parse_meta(params: Params) -> tuple[tuple[str, tuple[str, ...]], ...]:
    meta: list[tuple[str, tuple[str, ...]]] = []
    for name, values in params.items():
        if not name.startswith("meta."):
            continue
        key = name[len("meta.") :]
        if not META_KEY.match(key):
            raise bad_request(
                "metadata filters look like `meta.<key>=<value>` where the key is 1 to 64 of "
                "[A-Za-z0-9_-] (no nested paths, no operators)",
                "invalid_metadata_filter",
            )
        if any(len(v) > MAX_VALUE_LENGTH for v in values):
            raise bad_request(f"`{name}` is longer than {MAX_VALUE_LENGTH} characters")
        meta.append((key, tuple(sorted(set(values)))))
    if len(meta) > MAX_META_FILTERS:
        raise bad_request(f"at most {MAX_META_FILTERS} metadata filters")
    return tuple(sorted(meta))


def _plain(params: Params, name: str, pattern: re.Pattern[str] | None = None) -> str | None:
    value = single(params, name)
    if value is None:
        return None
    if not value or len(value) > MAX_VALUE_LENGTH or "\x00" in value:
        raise bad_request(f"`{name}` must be 1 to {MAX_VALUE_LENGTH} characters")
    if pattern is not None and not pattern.match(value):
        raise bad_request(f"`{name}` has an invalid format")
    return value


def parse_filter(
    params: Params,
    settings: QuerySettings,
    now: datetime | None = None,
    *,
    allow_text: bool = True,
) -> LogFilter:
    """Validate the shared filter parameters (the caller rejects unknown names first)."""
    now = now or datetime.now(UTC)
    q = single(params, "q") if allow_text else None
    if q is not None:
        if not q.strip():
            q = None
        elif len(q) > settings.max_query_length or any(ord(c) < 32 for c in q):
            raise bad_request(
                f"`q` must be at most {settings.max_query_length} printable characters"
            )
    words = parse_words(q, single(params, "match")) if q is not None else ()
    window, since_raw, until_raw = parse_window(params, settings, now, text_search=q is not None)
    trace_id = _plain(params, "trace_id", TRACE_ID)
    return LogFilter(
        services=parse_services(params.get("service", ())),
        levels=parse_levels(params.get("level", ())),
        trace_id=trace_id.lower() if trace_id else None,
        host=_plain(params, "host"),
        env=_plain(params, "env"),
        q=q,
        meta=parse_meta(params),
        since_raw=since_raw,
        until_raw=until_raw,
        window=window,
        words=words,
    )


def parse_words(q: str, match: str | None) -> tuple[str, ...]:
    """The words of ``q`` for ``match=word``; () for a substring search."""
    if match in (None, "substring"):
        return ()
    if match != "word":
        raise bad_request("`match` is `substring` or `word`")
    words = words_of(q)
    if not words:
        raise bad_request("`q` has no word to look up (words are [0-9A-Za-z_])")
    return tuple(sorted(words))
