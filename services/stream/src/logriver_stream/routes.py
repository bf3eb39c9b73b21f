"""``GET /v1/stream`` (SSE) and ``WS /v1/ws``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, WebSocket

from logriver_common.web.errors import ApiError
from logriver_stream.access import authenticate_request
from logriver_stream.filters import FilterError, spec_from_query
from logriver_stream.session import StreamContext
from logriver_stream.sse import EventStreamResponse
from logriver_stream.subscriptions import SubscribeError, subscribe
from logriver_stream.ws import WsConnection

router = APIRouter()

_STREAM_DESCRIPTION = """
Live tail as Server-Sent Events. Filters: `service` (repeatable), `level`
(minimum), `q` (case-insensitive substring), `regex`, `trace_id`,
`meta.<key>=<value>`. Start: live (default), `since=15m`, or resume with the
`Last-Event-ID` header (or `resume=<id>`). Auth: `Authorization: Bearer <key>`,
`X-API-Key`, or `token=<stream token from the query service>`. See
docs/stream.md for the wire format.
"""


def _context(request: Request | WebSocket) -> StreamContext:
    ctx: StreamContext = request.app.state.stream
    return ctx


@router.get(
    "/v1/stream",
    description=_STREAM_DESCRIPTION,
    response_class=EventStreamResponse,
    status_code=200,
    responses={
        200: {"content": {"text/event-stream": {}}},
        400: {"description": "invalid_filter or invalid_resume"},
        401: {"description": "no or bad API key / token"},
        403: {"description": "the key lacks `read`"},
        429: {
            "description": "too_many_subscribers (key or instance), too_many_regex_filters, "
            "or regex_budget_exhausted"
        },
    },
)
async def stream(request: Request) -> Response:
    ctx = _context(request)
    principal = await authenticate_request(
        request, request.query_params.get("token"), ctx.settings.tokens
    )
    try:
        spec, control = spec_from_query(request.query_params.multi_items())
    except FilterError as exc:
        raise ApiError(400, "invalid_filter", exc.detail) from None
    # EventSource sends Last-Event-ID on reconnect with the original URL, so the
    # header wins over a `resume` (or `since`) that started the first connection.
    resume = request.headers.get("last-event-id") or control.get("resume")
    try:
        session = await subscribe(
            ctx,
            principal=principal,
            spec=spec,
            transport="sse",
            resume=resume or None,
            since=control.get("since"),
        )
    except SubscribeError as exc:
        if exc.in_stream:
            # EventSource cannot read an error response's body, so an expired
            # resume point is said in the stream, where the page can show it.
            return EventStreamResponse(
                None,
                retry_ms=ctx.settings.retry_ms,
                send_timeout=ctx.settings.send_timeout_seconds,
                final=(exc.code, exc.detail),
            )
        headers = None
        if exc.status == 429:
            # A regex budget refills every window; subscriber slots free up as clients leave.
            headers = {"Retry-After": "1" if exc.code == "regex_budget_exhausted" else "5"}
        raise ApiError(exc.status, exc.code, exc.detail, headers=headers) from None
    return EventStreamResponse(
        session, retry_ms=ctx.settings.retry_ms, send_timeout=ctx.settings.send_timeout_seconds
    )


@router.websocket("/v1/ws")
async def websocket_stream(websocket: WebSocket) -> None:
    await WsConnection(websocket, _context(websocket)).serve()
