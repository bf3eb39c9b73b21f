"""The HTTP API: search, lookups, aggregations, stream tokens and the console's config."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response

from logriver_common.auth import DEV_KEY, ApiKey, Scope, require_scope
from logriver_common.stream_tokens import StreamTokenSettings, issue_token
from logriver_common.web.errors import ApiError
from logriver_query import aggregations, contract, cursor, search, top_messages
from logriver_query.cache import AggregationCache, cache_key
from logriver_query.contract import (
    META_DESCRIPTION,
    READ_ERRORS,
    ConsistentParam,
    HistogramParams,
    LogsParams,
    SummaryParams,
    TopMessagesParams,
    error_responses,
)
from logriver_query.filters import (
    EVENT_ID,
    FILTER_PARAMS,
    TRACE_ID,
    LogFilter,
    Params,
    bad_request,
    parse_filter,
    reject_unknown,
    single,
)
from logriver_query.hot_answers import HotAnswers
from logriver_query.metrics import timed_query
from logriver_query.reads import Collection, database_errors, reader
from logriver_query.settings import QuerySettings

MAX_PARAMETERS = 64
# Parameters that may be given more than once (as may every `meta.<key>`).
REPEATABLE = frozenset({"service", "level"})


@dataclass
class QueryContext:
    """What the handlers need, opened in the lifespan and kept on ``app.state.query``."""

    settings: QuerySettings
    collection: Collection
    cache: AggregationCache
    hot_answers: HotAnswers
    stream_tokens: StreamTokenSettings

    def reader(self, consistent: bool) -> Collection:
        return reader(
            self.collection,
            consistent=consistent,
            max_staleness_s=self.settings.max_staleness_seconds,
        )


async def context(request: Request) -> QueryContext:
    # `async`: FastAPI runs a plain `def` dependency in its thread pool, a thread hand-off
    # per request.
    ctx: QueryContext = request.app.state.query
    return ctx


def params_of(request: Request, allowed: frozenset[str] | set[str]) -> Params:
    """The raw query string, for what a model cannot check: names, repeats and `meta.*`."""
    query = request.query_params
    if len(query.multi_items()) > MAX_PARAMETERS:
        raise bad_request(f"at most {MAX_PARAMETERS} query parameters")
    params = {name: query.getlist(name) for name in query}
    reject_unknown(params, allowed)
    for name, values in params.items():
        # The model would silently keep the last of `limit=1&limit=1000`.
        if len(values) > 1 and name not in REPEATABLE and not name.startswith("meta."):
            single(params, name)
    return params


def json(body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


Ctx = Annotated[QueryContext, Depends(context)]
Reader = Annotated[ApiKey, Depends(require_scope(Scope.READ))]
router = APIRouter(prefix="/v1")

LOGS_PARAMS = FILTER_PARAMS | {"order", "limit", "page_size", "cursor", "consistent"}
SUMMARY_PARAMS = frozenset({"service", "since", "until", "host", "env", "consistent"})
CHART_PARAMS = (FILTER_PARAMS - {"q", "trace_id", "match"}) | {"consistent"}


@router.get(
    "/logs",
    summary="Search logs (filters, text search, cursor pagination)",
    description=META_DESCRIPTION,
    response_model=contract.LogsPage,
    responses=error_responses(*READ_ERRORS),
)
async def list_logs(
    request: Request, ctx: Ctx, _: Reader, query: Annotated[LogsParams, Query()]
) -> Response:
    if "page" in request.query_params:
        raise bad_request(
            "page numbers are not supported: pass `cursor` (the previous page's `next_cursor`); "
            "see docs/query.md"
        )
    params = params_of(request, LOGS_PARAMS)
    settings = ctx.settings
    flt = parse_filter(params, settings)
    order = query.order
    size_name, size = (
        ("page_size", query.page_size) if query.page_size is not None else ("limit", query.limit)
    )
    if size is not None and size > settings.max_page_size:
        raise bad_request(f"`{size_name}` must be an integer from 1 to {settings.max_page_size}")
    limit = size or settings.default_page_size
    position = None
    if query.cursor is not None:
        try:
            position = cursor.decode(
                query.cursor, settings.cursor_secret, filter_hash=flt.fingerprint(), order=order
            )
        except cursor.InvalidCursor as exc:
            raise bad_request(str(exc), "invalid_cursor") from None
    async with timed_query(
        "search", _loggable(flt, order=order, limit=limit), settings.slow_query_ms
    ):
        with database_errors():
            page = await search.find_page(
                ctx.reader(query.consistent),
                flt,
                order=order,
                limit=limit,
                position=position,
                max_time_ms=settings.max_time_ms,
                text_budget_ms=settings.text_page_budget_ms,
            )
    window = position.window if position is not None else flt.window
    next_cursor = (
        cursor.encode(page.next_position, settings.cursor_secret)
        if page.next_position is not None
        else None
    )
    return json(
        {
            "events": page.events,
            "count": len(page.events),
            "next_cursor": next_cursor,
            "order": order,
            "since": aggregations.iso(window.since),
            "until": aggregations.iso(window.until),
        }
    )


@router.get(
    "/logs/{event_id}",
    summary="One event by id",
    response_model=contract.Event,
    responses=error_responses(400, 401, 403, 404, 503),
)
async def get_log(
    request: Request,
    ctx: Ctx,
    _: Reader,
    event_id: Annotated[
        str,
        Path(
            pattern=EVENT_ID.pattern,
            description="The event id: 1 to 64 of `[A-Za-z0-9._:-]`.",
        ),
    ],
    query: Annotated[ConsistentParam, Query()],
) -> Response:
    params_of(request, {"consistent"})
    with database_errors():
        event = await search.find_event(
            ctx.reader(query.consistent), event_id, max_time_ms=ctx.settings.max_time_ms
        )
    if event is None:
        raise ApiError(404, "not_found", f"no event with id {event_id!r}")
    return json(event)


@router.get(
    "/traces/{trace_id}",
    summary="All logs of a trace, oldest first, with a Jaeger link",
    response_model=contract.Trace,
    responses=error_responses(*READ_ERRORS),
)
async def get_trace(
    request: Request,
    ctx: Ctx,
    _: Reader,
    trace_id: Annotated[
        str, Path(pattern=TRACE_ID.pattern, description="W3C trace id: 32 hex digits.")
    ],
    query: Annotated[ConsistentParam, Query()],
) -> Response:
    params_of(request, {"consistent"})
    trace_id = trace_id.lower()
    settings = ctx.settings
    async with timed_query("trace", {"trace_id": trace_id}, settings.slow_query_ms):
        with database_errors():
            events, truncated = await search.find_trace(
                ctx.reader(query.consistent),
                trace_id,
                cap=settings.max_trace_events,
                max_time_ms=settings.max_time_ms,
            )
    return json(
        {
            "trace_id": trace_id,
            "jaeger_url": f"{settings.jaeger_ui_url.rstrip('/')}/trace/{trace_id}",
            "events": events,
            "count": len(events),
            "truncated": truncated,
        }
    )


Aggregate = Callable[[Collection, LogFilter], Awaitable[dict[str, Any]]]


async def _cached(
    request: Request,
    ctx: Ctx,
    consistent: bool,
    kind: str,
    flt: LogFilter,
    extra: dict[str, Any],
    run: Aggregate,
) -> Response:
    """Serve an aggregation from the cache, or run it once (single-flight) and cache it."""
    settings = ctx.settings

    async def compute() -> dict[str, Any]:
        async with timed_query(kind, {**_loggable(flt), **extra}, settings.slow_query_ms):
            with database_errors():
                return await run(ctx.reader(consistent), flt)

    if consistent:
        # Read-your-writes cannot come from a cache.
        return json(await compute(), {"X-Cache": "bypass"})
    key = cache_key(settings.redis.key_prefix, kind, {**flt.identity(), **extra})
    answer = await ctx.cache.get_or_compute(key, compute)
    # A repeat of this very request is answered before routing while the copy lives.
    ctx.hot_answers.put(request.scope, answer.body, answer.fresh_s)
    # The cached bytes go out as they are: no decode and re-encode per hit.
    return Response(answer.body, media_type="application/json", headers={"X-Cache": answer.outcome})


@router.get(
    "/stats/errors",
    summary="Error count and latest error per service",
    description=META_DESCRIPTION,
    response_model=contract.ErrorSummary,
    responses=error_responses(*READ_ERRORS),
)
async def stats_errors(
    request: Request, ctx: Ctx, _: Reader, query: Annotated[SummaryParams, Query()]
) -> Response:
    params = params_of(request, SUMMARY_PARAMS)
    flt = parse_filter(params, ctx.settings, allow_text=False)
    max_ms = ctx.settings.max_time_ms

    async def run(coll: Collection, f: LogFilter) -> dict[str, Any]:
        return await aggregations.error_summary(coll, f, max_time_ms=max_ms)

    return await _cached(request, ctx, query.consistent, "errors", flt, {}, run)


@router.get(
    "/stats/histogram",
    summary="Counts per time bucket, by level or service",
    description=META_DESCRIPTION,
    response_model=contract.Histogram,
    responses=error_responses(*READ_ERRORS),
)
async def stats_histogram(
    request: Request, ctx: Ctx, _: Reader, query: Annotated[HistogramParams, Query()]
) -> Response:
    # Every filter the search takes narrows the histogram too (q and trace_id by a scan).
    params = params_of(request, FILTER_PARAMS | {"consistent", "bucket", "group_by"})
    settings = ctx.settings
    flt = parse_filter(params, settings)
    group_by = query.group_by
    bucket_s = aggregations.bucket_seconds(flt.window, query.bucket, settings.max_histogram_buckets)

    async def run(coll: Collection, f: LogFilter) -> dict[str, Any]:
        return await aggregations.histogram(
            coll,
            f,
            bucket_s=bucket_s,
            group_by=group_by,
            max_time_ms=settings.max_time_ms,
            scan_budget_ms=settings.scan_budget_ms,
        )

    extra = {"bucket": bucket_s, "group_by": group_by}
    return await _cached(request, ctx, query.consistent, "histogram", flt, extra, run)


@router.get(
    "/stats/services",
    summary="Services seen, with counts and error rates",
    description=META_DESCRIPTION,
    response_model=contract.ServicesSummary,
    responses=error_responses(*READ_ERRORS),
)
async def stats_services(
    request: Request, ctx: Ctx, _: Reader, query: Annotated[SummaryParams, Query()]
) -> Response:
    params = params_of(request, SUMMARY_PARAMS)
    flt = parse_filter(params, ctx.settings, allow_text=False)
    max_ms = ctx.settings.max_time_ms

    async def run(coll: Collection, f: LogFilter) -> dict[str, Any]:
        return await aggregations.services_summary(coll, f, max_time_ms=max_ms)

    return await _cached(request, ctx, query.consistent, "services", flt, {}, run)


@router.get(
    "/stats/top-messages",
    summary="Most frequent messages (errors unless `level` is given)",
    description=META_DESCRIPTION,
    response_model=contract.TopMessages,
    responses=error_responses(*READ_ERRORS),
)
async def stats_top_messages(
    request: Request, ctx: Ctx, _: Reader, query: Annotated[TopMessagesParams, Query()]
) -> Response:
    params = params_of(request, CHART_PARAMS | {"limit"})
    flt = parse_filter(params, ctx.settings, allow_text=False)
    limit = query.limit
    max_ms = ctx.settings.max_time_ms

    async def run(coll: Collection, f: LogFilter) -> dict[str, Any]:
        return await top_messages.top_messages(coll, f, limit=limit, max_time_ms=max_ms)

    return await _cached(request, ctx, query.consistent, "top-messages", flt, {"limit": limit}, run)


@router.post(
    "/stream-tokens",
    summary="A short-lived token for the live tail's EventSource",
    response_model=contract.StreamToken,
    responses=error_responses(401, 403),
)
async def stream_token(ctx: Ctx, key: Reader) -> Response:
    token, expires_at = issue_token(ctx.stream_tokens, key.id, [Scope.READ.value])
    return json({"token": token, "expires_at": expires_at})


@router.get("/console/config", include_in_schema=False)
async def console_config(ctx: Ctx) -> Response:
    """What the console needs before it has a key: where the stream and Jaeger are."""
    local = ctx.settings.mode == "local"
    return json(
        {
            "stream_base_url": ctx.settings.stream_base_url.rstrip("/"),
            "jaeger_ui_url": ctx.settings.jaeger_ui_url.rstrip("/"),
            "mode": ctx.settings.mode,
            # The dev key only exists in local mode (ApiKeyStore.prepare revokes it otherwise).
            "dev_key": DEV_KEY if local else None,
            "now": aggregations.iso(datetime.now(UTC)),
        }
    )


def _loggable(flt: LogFilter, **extra: Any) -> dict[str, Any]:
    return {k: v for k, v in {**flt.identity(), **extra}.items() if v not in (None, [], ())}
