"""``GET /v1/traces/{trace_id}/view``: a trace's spans from Jaeger, merged with its logs.

The console's trace page (``/trace.html?trace_id=…``) draws it. The spans are fetched
here, server-side, from Jaeger's query API (``/api/traces/<id>``): the browser never
talks to Jaeger, which needs no UI, no CORS and no exposure of its own. The logs come
from the same lookup as ``GET /v1/traces/{trace_id}``. A Jaeger that is down, slow or
answers nonsense is a 503 (the one error shape), never a 500; a trace Jaeger does not
know (not sampled, or expired) is an empty span list next to its logs.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from logriver_common.web.errors import ApiError
from logriver_query import search
from logriver_query.contract import READ_ERRORS, ConsistentParam, TraceView, error_responses
from logriver_query.filters import TRACE_ID
from logriver_query.metrics import timed_query
from logriver_query.reads import database_errors
from logriver_query.routes import Ctx, Reader, json, params_of

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["traces"])
RETRY_AFTER = {"Retry-After": "5"}


class JaegerSettings(BaseSettings):
    """Where the query service reads spans (``LOGRIVER_QUERY_JAEGER_*``)."""

    model_config = SettingsConfigDict(env_prefix="LOGRIVER_QUERY_", extra="ignore")

    # Jaeger's query API (the local stack's Jaeger has the API but no UI).
    jaeger_query_url: str = "http://127.0.0.1:16686"
    jaeger_timeout_s: float = Field(default=3.0, gt=0, le=60)
    # A trace bigger than this is cut (the page says so); it bounds memory and the page.
    jaeger_max_spans: int = Field(default=2_000, ge=1)
    jaeger_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)


class JaegerUnavailable(Exception):
    """Jaeger could not be asked, or its answer is not a trace."""


def _unavailable(detail: str) -> ApiError:
    return ApiError(503, "jaeger_unavailable", detail, headers=RETRY_AFTER)


async def fetch_trace(settings: JaegerSettings, trace_id: str) -> dict[str, Any] | None:
    """Jaeger's trace (``data[0]``), or None when Jaeger does not know it."""
    url = f"{settings.jaeger_query_url.rstrip('/')}/api/traces/{trace_id}"
    timeout = httpx.Timeout(settings.jaeger_timeout_s)
    try:
        async with (
            httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http,
            http.stream("GET", url, headers={"Accept": "application/json"}) as resp,
        ):
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise JaegerUnavailable(f"Jaeger answered HTTP {resp.status_code}")
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > settings.jaeger_max_bytes:
                    raise JaegerUnavailable(
                        f"the trace is larger than {settings.jaeger_max_bytes} bytes"
                    )
    except httpx.HTTPError as exc:
        raise JaegerUnavailable(f"Jaeger did not answer: {type(exc).__name__}") from None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise JaegerUnavailable("Jaeger's answer is not JSON") from None
    if not isinstance(payload, dict):
        raise JaegerUnavailable("Jaeger's answer is not a trace")
    data = payload.get("data")
    if data is None:
        return None
    if not isinstance(data, list):
        raise JaegerUnavailable("Jaeger's answer is not a trace")
    if not data:
        return None
    trace = data[0]
    if not isinstance(trace, dict):
        raise JaegerUnavailable("Jaeger's answer is not a trace")
    return trace


def _iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


def _tag_value(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def spans_of(trace: dict[str, Any], *, cap: int) -> tuple[list[dict[str, Any]], bool]:
    """Jaeger's spans as the page needs them, oldest first; and whether the cap cut some.

    Jaeger's JSON is read defensively: a span missing its ids or times is left out
    rather than failing the whole view.
    """
    processes = trace.get("processes")
    services: dict[str, str] = {}
    if isinstance(processes, dict):
        for key, process in processes.items():
            if isinstance(process, dict) and isinstance(process.get("serviceName"), str):
                services[str(key)] = process["serviceName"]
    raw = trace.get("spans")
    spans: list[dict[str, Any]] = []
    for span in raw if isinstance(raw, list) else []:
        parsed = _span(span, services)
        if parsed is not None:
            spans.append(parsed)
    spans.sort(key=lambda s: (s["start_us"], s["span_id"]))
    truncated = len(spans) > cap
    spans = spans[:cap]
    _set_depths(spans)
    return spans, truncated


def _span(span: Any, services: dict[str, str]) -> dict[str, Any] | None:
    if not isinstance(span, dict):
        return None
    span_id, start, duration = span.get("spanID"), span.get("startTime"), span.get("duration")
    if not isinstance(span_id, str) or not isinstance(start, int) or isinstance(start, bool):
        return None
    if not isinstance(duration, int) or isinstance(duration, bool) or duration < 0:
        duration = 0
    tags: dict[str, Any] = {}
    for tag in span.get("tags") or []:
        if isinstance(tag, dict) and isinstance(tag.get("key"), str):
            tags[tag["key"]] = _tag_value(tag.get("value"))
    parent = None
    for ref in span.get("references") or []:
        if isinstance(ref, dict) and ref.get("refType") == "CHILD_OF":
            parent = ref.get("spanID") if isinstance(ref.get("spanID"), str) else None
            break
    kind = tags.pop("span.kind", None)
    try:
        started = _iso(start)
    except (OverflowError, OSError, ValueError):
        return None
    return {
        "span_id": span_id,
        "parent_span_id": parent,
        "name": str(span.get("operationName", "")),
        "service": services.get(str(span.get("processID")), ""),
        "kind": kind if isinstance(kind, str) else None,
        "start": started,
        "start_us": start,
        "duration_us": duration,
        "error": tags.get("error") is True or tags.get("otel.status_code") == "ERROR",
        "attributes": tags,
    }


def _set_depths(spans: list[dict[str, Any]]) -> None:
    by_id = {span["span_id"]: span for span in spans}
    for span in spans:
        depth, parent, seen = 0, span["parent_span_id"], {span["span_id"]}
        # A parent outside the trace (the caller's span) or a cycle ends the walk.
        while parent in by_id and parent not in seen:
            seen.add(parent)
            depth += 1
            parent = by_id[parent]["parent_span_id"]
        span["depth"] = depth


def _micros(iso: Any) -> int | None:
    if not isinstance(iso, str):
        return None
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1_000_000)


def timeline(spans: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spans (by start) and logs (by time) in one time order; a span before a log at a tie."""
    rows: list[tuple[int, int, int, dict[str, Any]]] = []
    for index, span in enumerate(spans):
        rows.append((span["start_us"], 0, index, {"type": "span", "span_id": span["span_id"]}))
    for index, event in enumerate(events):
        at = _micros(event.get("timestamp"))
        if at is None:
            continue
        rows.append((at, 1, index, {"type": "log", "id": event["id"], "at_us": at}))
    rows.sort(key=lambda row: row[:3])
    return [row[3] for row in rows]


@router.get(
    "/traces/{trace_id}/view",
    summary="A trace's spans (from Jaeger) and logs, merged in time order",
    response_model=TraceView,
    responses=error_responses(*READ_ERRORS),
)
async def trace_view(
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
    if trace_id == "0" * 32:
        raise ApiError(400, "bad_request", "the all-zero trace id is invalid (W3C)")
    jaeger = JaegerSettings()
    settings = ctx.settings
    async with timed_query("trace_view", {"trace_id": trace_id}, settings.slow_query_ms):
        with database_errors():
            events, logs_truncated = await search.find_trace(
                ctx.reader(query.consistent),
                trace_id,
                cap=settings.max_trace_events,
                max_time_ms=settings.max_time_ms,
            )
    try:
        found = await fetch_trace(jaeger, trace_id)
    except JaegerUnavailable as exc:
        log.warning("jaeger query failed for %s: %s", trace_id, exc)
        raise _unavailable(f"the trace store is unavailable: {exc}") from None
    spans, spans_truncated = spans_of(found, cap=jaeger.jaeger_max_spans) if found else ([], False)
    ui = settings.jaeger_ui_url.rstrip("/")
    return json(
        {
            "trace_id": trace_id,
            "jaeger_url": f"{ui}/trace/{trace_id}" if ui else None,
            "spans": spans,
            "events": events,
            "timeline": timeline(spans, events),
            "spans_truncated": spans_truncated,
            "events_truncated": logs_truncated,
        }
    )
