"""The query API's typed contract: query-parameter models, response models, error answers.

The parameter models are what FastAPI validates first and what the OpenAPI
document lists, so clients and fuzzers (schemathesis) see every parameter with
its type. The meaning of the values that the models keep as text (relative
times, level aliases, comma lists, ``meta.<key>``) is checked in
``filters.py``, the one place that builds a MongoDB filter. Every refusal, from
either step, is ``400`` in the one error shape.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from logriver_query.filters import MAX_META_FILTERS, MAX_SERVICES, MAX_VALUE_LENGTH

# ---------------------------------------------------------------------------
# Query parameters


class _Params(BaseModel):
    # `meta.<key>` names are dynamic, so extras pass through here; the route checks
    # every name against its whitelist (unknown → 400 unknown_parameter).
    model_config = ConfigDict(extra="ignore")


# RFC 3339 or relative; declared as such so fuzzers try real (and extreme) datetimes.
TimeBound = Annotated[
    str,
    # Empty means the default, as it always has.
    StringConstraints(max_length=1024),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "pattern": r"^(now|[0-9]{1,7}[smhdw])$"},
            ]
        }
    ),
]


class ConsistentParam(_Params):
    consistent: bool = Field(
        default=False,
        description="`true` reads from the primary with majority read concern "
        "(read-your-writes); by default reads go to a secondary at most 90 s behind.",
    )


class WindowParams(ConsistentParam):
    since: TimeBound | None = Field(
        default=None,
        description="Start of the half-open window `[since, until)`: RFC 3339 "
        "(`2026-01-02T15:04:05Z`, an offset or none for UTC), `now`, or relative "
        "(`15m`, `2h`, `7d`, `1w`). Default: `until` minus one hour.",
        examples=["15m", "2026-01-02T15:04:05Z"],
    )
    until: TimeBound | None = Field(
        default=None,
        description="End of the window (exclusive), in the same forms as `since`. Default: now.",
        examples=["now", "2026-01-02T17:04:05+01:00"],
    )
    service: list[str] = Field(
        default_factory=list,
        description=f"Service names (1 to 64 of `[A-Za-z0-9._-]`); repeat the parameter "
        f"or separate with commas. At most {MAX_SERVICES}.",
        examples=[["checkout", "payments,auth"]],
    )
    host: str | None = Field(
        default=None, min_length=1, max_length=MAX_VALUE_LENGTH, description="Exact host."
    )
    env: str | None = Field(
        default=None, min_length=1, max_length=MAX_VALUE_LENGTH, description="Exact environment."
    )


class LevelParam(_Params):
    level: list[str] = Field(
        default_factory=list,
        description="Levels: `ERROR`, aliases such as `warn`, or `>=WARNING` for that "
        "level and above; repeat or separate with commas.",
        examples=[[">=WARNING"], ["ERROR,CRITICAL"]],
    )


class TraceParam(_Params):
    trace_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{32}$",
        description="W3C trace id: 32 hex digits.",
    )


class FilterParams(WindowParams, LevelParam, TraceParam):
    """The filters every search accepts (plus `meta.<key>`, see the operation)."""


class TextParams(_Params):
    q: str | None = Field(
        default=None,
        max_length=1024,
        description="Text search, at most 256 printable characters "
        "(`LOGRIVER_QUERY_MAX_QUERY_LENGTH`). With `match=substring` (default): a "
        "case-insensitive literal substring of the message (not a regex), scanned newest "
        "time slice first. With `match=word`: every word of `q` (`[0-9a-z_]+`, case-insensitive) "
        "appears as a whole word in the message, answered from the token index.",
    )
    match: Literal["substring", "word"] = Field(
        default="substring", description="How `q` matches: `substring` or whole `word`s."
    )


class LogsParams(FilterParams, TextParams):
    order: Literal["desc", "asc"] = Field(
        default="desc", description="`desc` (newest first) or `asc`."
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        description="Page size, 100 by default, at most 1000 (`LOGRIVER_QUERY_MAX_PAGE_SIZE`).",
    )
    page_size: int | None = Field(default=None, ge=1, description="Alias of `limit`.")
    cursor: str | None = Field(
        default=None,
        max_length=1024,
        description="The previous page's `next_cursor`, with the same filters and order.",
    )


class SummaryParams(WindowParams):
    """`/v1/stats/errors` and `/v1/stats/services`: no level, text or trace filter."""


class HistogramParams(FilterParams, TextParams):
    bucket: str = Field(
        default="auto",
        pattern=r"^(auto|\d{1,7}[smhdw])$",
        description="`auto` (at most about 60 buckets) or a size such as `30s`, `5m`, "
        "`1h`, `1d`; at most 1000 buckets (`LOGRIVER_QUERY_MAX_HISTOGRAM_BUCKETS`).",
    )
    group_by: Literal["level", "service", "none"] = Field(
        default="level", description="Count per `level`, per `service`, or `none`."
    )


class TopMessagesParams(WindowParams, LevelParam):
    limit: int = Field(default=10, ge=1, le=100, description="How many messages.")


META_DESCRIPTION = inspect.cleandoc(
    f"""
    **Metadata filters** (dynamic parameter names, not listed above):
    `meta.<key>=<value>` keeps events whose `metadata.<key>` equals the value.

    * The key is 1 to 64 of `[A-Za-z0-9_-]`: no dots (no nested paths), no `$`
      (no operators). Any other key is `400 invalid_metadata_filter`.
    * The value is text of at most {MAX_VALUE_LENGTH} characters, compared literally;
      a value that spells a number or `true`/`false` also matches that number or
      boolean (`meta.attempt=3` matches `3` and `"3"`).
    * Repeat a key to match any of its values; different keys must all match.
    * At most {MAX_META_FILTERS} keys per query.

    Example: `?meta.order_id=A-1&meta.attempt=3&meta.attempt=4`.
    """
)

# ---------------------------------------------------------------------------
# Responses


class ErrorBody(BaseModel):
    """The one error shape of every logriver service."""

    error: str = Field(description="A stable code such as `bad_request` or `invalid_cursor`.")
    detail: Any = Field(description="What was wrong, for a person.")
    request_id: str | None = Field(description="Also in the `X-Request-ID` header and the logs.")


_ERRORS = {
    400: "A parameter is invalid (`bad_request`, `unknown_parameter`, `invalid_range`, "
    "`invalid_cursor`, `invalid_metadata_filter`), or the query is too broad or ran out "
    "of time (`query_too_broad`).",
    401: "No API key, or an invalid or revoked one.",
    403: "The API key lacks the `read` scope.",
    404: "No such event.",
    503: "The log store is unavailable; retry after `Retry-After` seconds.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody, "description": _ERRORS[code]} for code in codes}


READ_ERRORS = (400, 401, 403, 503)


class Event(BaseModel):
    """A stored event: the fields the client sent, normalised, plus the server's. Nothing
    else: MongoDB builds exactly these fields (``EVENT_VIEW``)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    timestamp: str = Field(
        description="RFC 3339, UTC, milliseconds.", examples=["2026-03-04T05:06:07.089Z"]
    )
    level: str
    service: str
    message: str
    trace_id: str | None = None
    span_id: str | None = None
    host: str | None = None
    env: str | None = None
    metadata: dict[str, Any] | None = None
    received_at: str | None = None


class LogsPage(BaseModel):
    events: list[Event]
    count: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
    order: Literal["desc", "asc"]
    since: str
    until: str


class Trace(BaseModel):
    trace_id: str
    jaeger_url: str
    events: list[Event]
    count: int
    truncated: bool = Field(description="More events exist than `LOGRIVER_QUERY_MAX_TRACE_EVENTS`.")


class TraceView(BaseModel):
    """The console's trace page: spans from Jaeger and the trace's logs on one time axis."""

    trace_id: str
    jaeger_url: str | None = Field(description="The Jaeger UI's page, when one is configured.")
    spans: list[dict[str, Any]] = Field(description="Spans by start time (microseconds).")
    events: list[Event]
    timeline: list[dict[str, Any]] = Field(
        description="Spans and logs merged in time order: `{type: span|log, ...}`."
    )
    spans_truncated: bool
    events_truncated: bool


class Window(BaseModel):
    since: str
    until: str


class LatestError(BaseModel):
    id: str
    timestamp: str
    level: str
    message: str | None = None
    trace_id: str | None = None


class ServiceErrors(BaseModel):
    service: str
    errors: int
    latest: LatestError


class ErrorSummary(Window):
    total_errors: int
    services: list[ServiceErrors]
    source: Literal["rollups", "scan"] = Field(
        description="`rollups`: counted from pre-computed counts (exact); `scan`: over events."
    )


class Bucket(BaseModel):
    start: str
    counts: dict[str, int]
    total: int


class Histogram(Window):
    bucket_seconds: int
    group_by: Literal["level", "service", "none"]
    groups: list[str]
    total: int
    buckets: list[Bucket]
    source: Literal["rollups", "scan"] = Field(
        description="`rollups` (service/level/time filters: exact, any range) or `scan` "
        "(host, env, trace_id, q or meta filters: the events are scanned newest first within "
        "`LOGRIVER_QUERY_SCAN_BUDGET_MS`)."
    )
    truncated: bool = Field(
        description="The scan ran out of its time budget: buckets before `complete_since` "
        "are missing or partial."
    )
    complete_since: str | None = Field(
        description="Counts are exact from here to `until` (equals `since` unless truncated)."
    )


class ServiceSummary(BaseModel):
    service: str
    count: int
    errors: int
    error_rate: float
    last_seen: str


class ServicesSummary(Window):
    services: list[ServiceSummary]
    source: Literal["rollups", "scan"]


class TopMessage(BaseModel):
    message: str
    count: int
    services: list[str]
    last_seen: str


class TopMessages(Window):
    levels: list[str]
    messages: list[TopMessage]


class StreamToken(BaseModel):
    token: str
    expires_at: float = Field(description="Unix seconds.")
