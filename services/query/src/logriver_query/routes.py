"""The HTTP API: search, lookups, aggregations, stream tokens and the console's config."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Request, Response

from logriver_common.auth import DEV_KEY, ApiKey, Scope, require_scope
from logriver_common.documents import document_to_event
from logriver_common.stream_tokens import StreamTokenSettings, issue_token
from logriver_common.web.errors import ApiError
from logriver_query import aggregations, cursor, search
from logriver_query.cache import AggregationCache, cache_key
from logriver_query.filters import (
    EVENT_ID,
    FILTER_PARAMS,
    TRACE_ID,
    LogFilter,
    Params,
    bad_request,
    parse_bool,
    parse_filter,
    parse_int,
    parse_order,
    reject_unknown,
    single,
)
from logriver_query.metrics import timed_query
from logriver_query.reads import Collection, database_errors, reader
from logriver_query.settings import QuerySettings

MAX_PARAMETERS = 64


@dataclass
class QueryContext:
    """What the handlers need, opened in the lifespan and kept on ``app.state.query``."""

    settings: QuerySettings
    collection: Collection
    cache: AggregationCache
    stream_tokens: StreamTokenSettings

    def reader(self, consistent: bool) -> Collection:
        return reader(
            self.collection,
            consistent=consistent,
            max_staleness_s=self.settings.max_staleness_seconds,
        )


def context(request: Request) -> QueryContext:
    ctx: QueryContext = request.app.state.query
    return ctx


def params_of(request: Request) -> Params:
    names = list(request.query_params.keys())
    if len(request.query_params.multi_items()) > MAX_PARAMETERS:
        raise bad_request(f"at most {MAX_PARAMETERS} query parameters")
    return {name: request.query_params.getlist(name) for name in names}


def json(body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


Ctx = Annotated[QueryContext, Depends(context)]
Reader = Annotated[ApiKey, Depends(require_scope(Scope.READ))]
router = APIRouter(prefix="/v1")


@router.get("/logs", summary="Search logs (filters, text search, cursor pagination)")
async def list_logs(request: Request, ctx: Ctx, _: Reader) -> Response:
    params = params_of(request)
    if "page" in params:
        raise bad_request(
            "page numbers are not supported: pass `cursor` (the previous page's `next_cursor`); "
            "see docs/query.md"
        )
    reject_unknown(params, FILTER_PARAMS | {"order", "limit", "page_size", "cursor", "consistent"})
    settings = ctx.settings
    flt = parse_filter(params, settings)
    order = parse_order(params)
    size_name = "page_size" if "page_size" in params else "limit"
    limit = parse_int(params, size_name, settings.default_page_size, 1, settings.max_page_size)
    consistent = parse_bool(params, "consistent")
    position = None
    token = single(params, "cursor")
    if token is not None:
        try:
            position = cursor.decode(
                token, settings.cursor_secret, filter_hash=flt.fingerprint(), order=order
            )
        except cursor.InvalidCursor as exc:
            raise bad_request(str(exc), "invalid_cursor") from None
    async with timed_query(
        "search", _loggable(flt, order=order, limit=limit), settings.slow_query_ms
    ):
        with database_errors():
            page = await search.find_page(
                ctx.reader(consistent),
                flt,
                order=order,
                limit=limit,
                position=position,
                max_time_ms=settings.max_time_ms,
            )
    window = position.window if position is not None else flt.window
    next_cursor = (
        cursor.encode(page.next_position, settings.cursor_secret)
        if page.next_position is not None
        else None
    )
    return json(
        {
            "events": [document_to_event(doc) for doc in page.documents],
            "count": len(page.documents),
            "next_cursor": next_cursor,
            "order": order,
            "since": aggregations.iso(window.since),
            "until": aggregations.iso(window.until),
        }
    )


@router.get("/logs/{event_id}", summary="One event by id")
async def get_log(
    request: Request, ctx: Ctx, _: Reader, event_id: Annotated[str, Path(max_length=64)]
) -> Response:
    params = params_of(request)
    reject_unknown(params, {"consistent"})
    if not EVENT_ID.match(event_id):
        raise bad_request("an event id is 1 to 64 of [A-Za-z0-9._:-]")
    with database_errors():
        doc = await search.find_event(
            ctx.reader(parse_bool(params, "consistent")),
            event_id,
            max_time_ms=ctx.settings.max_time_ms,
        )
    if doc is None:
        raise ApiError(404, "not_found", f"no event with id {event_id!r}")
    return json(document_to_event(doc))


@router.get("/traces/{trace_id}", summary="All logs of a trace, oldest first, with a Jaeger link")
async def get_trace(
    request: Request, ctx: Ctx, _: Reader, trace_id: Annotated[str, Path(max_length=32)]
) -> Response:
    params = params_of(request)
    reject_unknown(params, {"consistent"})
    if not TRACE_ID.match(trace_id):
        raise bad_request("a trace id is 32 hex digits")
    trace_id = trace_id.lower()
    settings = ctx.settings
    async with timed_query("trace", {"trace_id": trace_id}, settings.slow_query_ms):
        with database_errors():
            docs, truncated = await search.find_trace(
                ctx.reader(parse_bool(params, "consistent")),
                trace_id,
                cap=settings.max_trace_events,
                max_time_ms=settings.max_time_ms,
            )
    return json(
        {
            "trace_id": trace_id,
            "jaeger_url": f"{settings.jaeger_ui_url.rstrip('/')}/trace/{trace_id}",
            "events": [document_to_event(doc) for doc in docs],
            "count": len(docs),
            "truncated": truncated,
        }
    )


Aggregate = Callable[[Collection, LogFilter], Awaitable[dict[str, Any]]]


async def _cached(
    ctx: Ctx,
    params: Params,
    kind: str,
    flt: LogFilter,
    extra: dict[str, Any],
    run: Aggregate,
) -> Response:
    """Serve an aggregation from the cache, or run it once (single-flight) and cache it."""
    settings = ctx.settings
    consistent = parse_bool(params, "consistent")

    async def compute() -> dict[str, Any]:
        async with timed_query(kind, {**_loggable(flt), **extra}, settings.slow_query_ms):
            with database_errors():
                return await run(ctx.reader(consistent), flt)

    if consistent:
        # Read-your-writes cannot come from a cache.
        return json(await compute(), {"X-Cache": "bypass"})
    key = cache_key(settings.redis.key_prefix, kind, {**flt.identity(), **extra})
    value, outcome = await ctx.cache.get_or_compute(key, compute)
    return json(value, {"X-Cache": outcome})


@router.get("/stats/errors", summary="Error count and latest error per service")
async def stats_errors(request: Request, ctx: Ctx, _: Reader) -> Response:
    params = params_of(request)
    reject_unknown(params, {"service", "since", "until", "host", "env", "consistent"})
    flt = parse_filter(params, ctx.settings, allow_text=False)
    max_ms = ctx.settings.max_time_ms

    async def run(coll: Collection, f: LogFilter) -> dict[str, Any]:
        return await aggregations.error_summary(coll, f, max_time_ms=max_ms)

    return await _cached(ctx, params, "errors", flt, {}, run)


@router.get("/stats/histogram", summary="Counts per time bucket, by level or service")
async def stats_histogram(request: Request, ctx: Ctx, _: Reader) -> Response:
    params = params_of(request)
    allowed = FILTER_PARAMS - {"q", "trace_id"}
    reject_unknown(params, allowed | {"bucket", "group_by", "consistent"})
    settings = ctx.settings
    flt = parse_filter(params, settings, allow_text=False)
    group_by = single(params, "group_by") or "level"
    if group_by not in ("level", "service", "none"):
        raise bad_request("`group_by` is level, service or none")
    bucket_s = aggregations.bucket_seconds(
        flt.window, single(params, "bucket"), settings.max_histogram_buckets
    )

    async def run(coll: Collection, f: LogFilter) -> dict[str, Any]:
        return await aggregations.histogram(
            coll,
            f,
            bucket_s=bucket_s,
            group_by=group_by,  # type: ignore[arg-type]  # checked above
            max_time_ms=settings.max_time_ms,
        )

    extra = {"bucket": bucket_s, "group_by": group_by}
    return await _cached(ctx, params, "histogram", flt, extra, run)


@router.get("/stats/services", summary="Services seen, with counts and error rates")
async def stats_services(request: Request, ctx: Ctx, _: Reader) -> Response:
    params = params_of(request)
    reject_unknown(params, {"service", "since", "until", "host", "env", "consistent"})
    flt = parse_filter(params, ctx.settings, allow_text=False)
    max_ms = ctx.settings.max_time_ms

    async def run(coll: Collection, f: LogFilter) -> dict[str, Any]:
        return await aggregations.services_summary(coll, f, max_time_ms=max_ms)

    return await _cached(ctx, params, "services", flt, {}, run)


@router.get("/stats/top-messages", summary="Most frequent error messages")
async def stats_top_messages(request: Request, ctx: Ctx, _: Reader) -> Response:
    params = params_of(request)
    allowed = FILTER_PARAMS - {"q", "trace_id"}
    reject_unknown(params, allowed | {"limit", "consistent"})
    flt = parse_filter(params, ctx.settings, allow_text=False)
    limit = parse_int(params, "limit", 10, 1, 100)
    max_ms = ctx.settings.max_time_ms

    async def run(coll: Collection, f: LogFilter) -> dict[str, Any]:
        return await aggregations.top_messages(coll, f, limit=limit, max_time_ms=max_ms)

    return await _cached(ctx, params, "top-messages", flt, {"limit": limit}, run)


@router.post("/stream-tokens", summary="A short-lived token for the live tail's EventSource")
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
