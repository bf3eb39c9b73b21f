"""Request context as plain ASGI middleware (cheaper than BaseHTTPMiddleware).

Takes a sane ``X-Request-ID`` from the client or makes one, exposes it to logs
and error bodies, and answers with ``X-Request-ID`` and ``X-Response-Time``.
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from logriver_common.service_logging import request_id_var

_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._\-]{1,128}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = (
            incoming.decode()
            if incoming is not None and _VALID_REQUEST_ID.match(incoming)
            else uuid.uuid4().hex
        )
        token = request_id_var.set(request_id)
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"x-response-time", f"{elapsed_ms:.2f}ms".encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            request_id_var.reset(token)
