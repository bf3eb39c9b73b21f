"""Server-Sent Events: the frames and a small ASGI response that streams a session.

Wire format (documented in docs/stream.md; the web console depends on it)::

    : open                      first message: resume point and reconnect delay
    retry: 2000
    id: <cursor>

    event: log                  one per matching event
    id: <cursor>
    data: <event JSON>

    event: dropped              the client was too slow; this many events were skipped
    data: {"dropped": 42}

    event: error                the stream ends after this; do not reconnect with the same id
    data: {"error": "resume_expired", "detail": "..."}

    : ping                      heartbeat; the id (when present) advances the resume point
    id: <cursor>

A hand-written response rather than ``StreamingResponse`` or sse-starlette:
it bounds every write with a timeout (a client that stops reading is cut off
instead of pinning a connection forever), it watches for the disconnect
itself, and it writes pre-built, shared frames without per-event overhead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from logriver_stream.direct_send import body_send
from logriver_stream.records import StreamRecord
from logriver_stream.session import SHUTTING_DOWN, Session
from logriver_stream.subscriber import CloseReason

log = logging.getLogger(__name__)


def open_frame(cursor: str, retry_ms: int) -> bytes:
    return b": open\nretry: %d\nid: %s\n\n" % (retry_ms, cursor.encode())


def dropped_frame(count: int) -> bytes:
    return b'event: dropped\ndata: {"dropped": %d}\n\n' % count


def error_frame(code: str, detail: Any) -> bytes:
    return b"event: error\ndata: " + orjson.dumps({"error": code, "detail": detail}) + b"\n\n"


def heartbeat_frame(cursor: str | None) -> bytes:
    return b": ping\n\n" if cursor is None else b": ping\nid: %s\n\n" % cursor.encode()


class SseOutbound:
    """Writes frames to one HTTP response, each write bounded by ``timeout``."""

    def __init__(self, send: Send, *, retry_ms: int, timeout: float) -> None:
        self._send = send
        self._retry_ms = retry_ms
        self._timeout = timeout

    async def write(self, data: bytes) -> None:
        async with asyncio.timeout(self._timeout):
            await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def open(self, cursor: str) -> None:
        await self.write(open_frame(cursor, self._retry_ms))

    async def records(self, records: Sequence[StreamRecord]) -> None:
        await self.write(b"".join([record.sse_frame() for record in records]))

    async def dropped(self, count: int) -> None:
        await self.write(dropped_frame(count))

    async def heartbeat(self, cursor: str | None) -> None:
        await self.write(heartbeat_frame(cursor))

    async def end(self, reason: CloseReason) -> None:
        # On shutdown the stream just ends: EventSource reconnects with its
        # Last-Event-ID, to another instance if there is one. Every other
        # reason is final and is said so.
        if reason != SHUTTING_DOWN:
            await self.write(error_frame(reason.code, reason.detail))


_HEADERS = {
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",  # nginx: do not buffer the stream
}


class EventStreamResponse(Response):
    """Streams one :class:`Session`; the session is closed however the response ends."""

    media_type = "text/event-stream"

    def __init__(
        self,
        session: Session | None,
        *,
        retry_ms: int,
        send_timeout: float,
        final: tuple[str, Any] | None = None,
    ) -> None:
        # Not Response.__init__: that would add `content-length: 0`.
        self.status_code = 200
        self.background = None
        self.init_headers(_HEADERS)
        self._session = session
        self._retry_ms = retry_ms
        self._send_timeout = send_timeout
        self._final = final  # an error to send instead of a session (e.g. resume_expired)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            # The start above and the end below go through the middleware chain (headers,
            # CORS, the server span's end); the chunks between go to the server directly.
            out = SseOutbound(
                body_send(scope, send), retry_ms=self._retry_ms, timeout=self._send_timeout
            )
            if self._session is None:
                code, detail = self._final or ("internal_error", "no stream")
                await out.write(error_frame(code, detail))
            else:
                finished = await self._run_until_disconnect(self._session.run(out), receive)
                if not finished:
                    return  # the client left: nothing more to send
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(self._send_timeout):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if self._session is not None:
                await self._session.close()

    @staticmethod
    async def _run_until_disconnect(work: Any, receive: Receive) -> bool:
        """Run ``work`` until it ends (True) or the client disconnects (False)."""

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        runner = asyncio.ensure_future(work)
        watcher = asyncio.ensure_future(disconnected())
        try:
            done, _ = await asyncio.wait({runner, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (runner, watcher):
                task.cancel()
            await asyncio.gather(runner, watcher, return_exceptions=True)
        if runner not in done or runner.cancelled():
            return False
        exc = runner.exception()
        if exc is None:
            return True
        if isinstance(exc, TimeoutError | OSError):
            log.info("SSE client stopped reading; closing its stream: %r", exc)
        else:
            log.error("SSE stream failed", exc_info=exc)
        return False
