"""The WebSocket transport: the same subscription as SSE, plus filter changes in place.

Server → client messages (JSON text)::

    {"type": "open", "id": "<cursor>"}                      start of a (re)subscription
    {"type": "log", "id": "<cursor>", "event": {...}}
    {"type": "dropped", "dropped": 42}
    {"type": "ping", "id": "<cursor>"}                      heartbeat ("id" when it moved)
    {"type": "filter", "filter": {...}}                     acknowledges a filter change
    {"type": "error", "error": "<code>", "detail": ...}     then a close with the code below

Client → server::

    {"type": "filter", "filter": {"service": ["api"], "level": "ERROR", ...}}
    {"type": "resume", "id": "<cursor>"}     restart from a cursor; discard what came before
                                             the next "open"

Close codes: 4400 bad filter/resume/message, 4401 unauthenticated or the key
was revoked (``key_revoked``), 4403 no ``read`` scope, 4410 resume point
expired, 4429 too many subscribers or regex filters, or the key's regex budget
is spent, 1013 slow consumer, 1001 shutting down, 1011 server error. A filter
change that is refused (bad filter, regex cap or budget) is an ``error``
message only: the subscription goes on with its previous filter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketState

from logriver_common.web.errors import ApiError
from logriver_stream.access import Principal, authenticate_headers
from logriver_stream.filters import FilterError, FilterSpec, spec_from_json, spec_from_query
from logriver_stream.hub import TooManyRegexFilters
from logriver_stream.records import StreamRecord
from logriver_stream.session import Session, StreamContext
from logriver_stream.subscriber import CloseReason
from logriver_stream.subscriptions import SubscribeError, compile_filter, subscribe

log = logging.getLogger(__name__)

MAX_CLIENT_MESSAGE = 64 * 1024
CLOSE_CODES = {
    "invalid_filter": 4400,
    "invalid_resume": 4400,
    "bad_message": 4400,
    "unauthorized": 4401,
    "key_revoked": 4401,
    "forbidden": 4403,
    "resume_expired": 4410,
    "too_many_subscribers": 4429,
    "too_many_regex_filters": 4429,
    "regex_budget_exhausted": 4429,
    "slow_consumer": 1013,
    "shutting_down": 1001,
}


def _reason(code: str, detail: Any) -> str:
    """A close reason within the protocol's 123 bytes."""
    text = f"{code}: {detail if isinstance(detail, str) else orjson.dumps(detail).decode()}"
    return text.encode()[:123].decode(errors="ignore")


class WsOutbound:
    """Serialises every send on one socket (the session and the reader both send)."""

    def __init__(self, websocket: WebSocket, *, timeout: float) -> None:
        self._ws = websocket
        self._timeout = timeout
        self._lock = asyncio.Lock()

    async def send(self, *texts: str) -> None:
        async with self._lock, asyncio.timeout(self._timeout):
            for text in texts:
                await self._ws.send_text(text)

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send(orjson.dumps(message).decode())

    async def open(self, cursor: str) -> None:
        await self.send_json({"type": "open", "id": cursor})

    async def records(self, records: Sequence[StreamRecord]) -> None:
        await self.send(*(record.ws_text() for record in records))

    async def dropped(self, count: int) -> None:
        await self.send_json({"type": "dropped", "dropped": count})

    async def heartbeat(self, cursor: str | None) -> None:
        await self.send_json({"type": "ping"} if cursor is None else {"type": "ping", "id": cursor})

    async def end(self, reason: CloseReason) -> None:
        await self.fail(reason.code, reason.detail)

    async def fail(self, code: str, detail: Any) -> None:
        """Say why, then close with the matching code."""
        with contextlib.suppress(Exception):  # the client may already be gone
            await self.send_json({"type": "error", "error": code, "detail": detail})
        if self._ws.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                await self._ws.close(CLOSE_CODES.get(code, 1011), _reason(code, detail))


class WsConnection:
    def __init__(self, websocket: WebSocket, ctx: StreamContext) -> None:
        self._ws = websocket
        self._ctx = ctx
        self._out = WsOutbound(websocket, timeout=ctx.settings.send_timeout_seconds)
        self._spec = FilterSpec()
        self._session: Session | None = None
        self._principal: Principal | None = None
        self._resume_requests: asyncio.Queue[str] = asyncio.Queue(maxsize=1)

    async def serve(self) -> None:
        await self._ws.accept()
        query = self._ws.query_params
        try:
            principal = await authenticate_headers(
                self._ws.headers,
                query.get("token"),
                self._ws.app.state.api_keys,
                self._ctx.settings.tokens,
            )
            self._spec, control = spec_from_query(query.multi_items())
        except ApiError as exc:
            await self._out.fail(exc.error, exc.detail)
            return
        except FilterError as exc:
            await self._out.fail("invalid_filter", exc.detail)
            return
        self._principal = principal
        try:
            await self._run(principal, control.get("resume"), control.get("since"))
        finally:
            if self._session is not None:
                await self._session.close()

    async def _open(self, principal: Principal, resume: str | None, since: str | None) -> bool:
        try:
            self._session = await subscribe(
                self._ctx,
                principal=principal,
                spec=self._spec,
                transport="ws",
                resume=resume,
                since=since,
            )
        except SubscribeError as exc:
            await self._out.fail(exc.code, exc.detail)
            return False
        return True

    async def _run(self, principal: Principal, resume: str | None, since: str | None) -> None:
        if not await self._open(principal, resume, since):
            return
        reader = asyncio.create_task(self._read())
        try:
            while self._session is not None:
                runner = asyncio.create_task(self._session.run(self._out))
                resumed = asyncio.create_task(self._resume_requests.get())
                done, _ = await asyncio.wait(
                    {reader, runner, resumed}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in (runner, resumed):
                    task.cancel()
                await asyncio.gather(runner, resumed, return_exceptions=True)
                if resumed in done and not resumed.cancelled():
                    # A restart from a cursor: the old subscription ends, a new one
                    # starts with its own "open" message.
                    await self._session.close()
                    self._session = None
                    if not await self._open(principal, resumed.result(), None):
                        return
                    continue
                if runner in done and not runner.cancelled() and runner.exception() is not None:
                    exc = runner.exception()
                    if isinstance(exc, TimeoutError | OSError):
                        log.info("WebSocket client stopped reading; closing: %r", exc)
                    else:
                        log.error("WebSocket stream failed", exc_info=exc)
                        await self._out.fail("internal_error", "the stream failed")
                return
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(self) -> None:
        """Client messages until it disconnects: filter changes and resume requests."""
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text") or message.get("bytes") or b""
            if len(raw) > MAX_CLIENT_MESSAGE:
                await self._out.fail("bad_message", f"messages are at most {MAX_CLIENT_MESSAGE}")
                return
            await self._handle(raw)

    async def _handle(self, raw: str | bytes) -> None:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "filter" and isinstance(data, dict) and self._principal is not None:
            try:
                spec = spec_from_json(data.get("filter", {}))
                compiled = compile_filter(self._ctx, spec, self._principal.key_id)
                if self._session is not None:
                    self._ctx.admission.replace_filter(self._session.subscriber, compiled)
                else:
                    self._ctx.admission.check_filter(self._principal.key_id, None, compiled)
            except FilterError as exc:
                await self._out.send_json(
                    {"type": "error", "error": "invalid_filter", "detail": exc.detail}
                )
                return
            except SubscribeError as exc:
                await self._out.send_json(
                    {"type": "error", "error": exc.code, "detail": exc.detail}
                )
                return
            except TooManyRegexFilters as exc:
                await self._out.send_json(
                    {"type": "error", "error": "too_many_regex_filters", "detail": str(exc)}
                )
                return
            self._spec = spec
            if self._session is not None:
                self._ctx.hub.set_filter(self._session.subscriber, compiled)
            await self._out.send_json({"type": "filter", "filter": compiled.describe()})
        elif kind == "resume" and isinstance(data, dict) and isinstance(data.get("id"), str):
            if self._resume_requests.full():
                self._resume_requests.get_nowait()  # only the latest request matters
            self._resume_requests.put_nowait(data["id"])
        else:
            await self._out.send_json(
                {
                    "type": "error",
                    "error": "bad_message",
                    "detail": 'send {"type": "filter", "filter": {...}} or '
                    '{"type": "resume", "id": "<cursor>"}',
                }
            )
