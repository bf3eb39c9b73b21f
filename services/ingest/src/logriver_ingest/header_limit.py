"""Refuse requests whose headers are unreasonably large (431), before any work.

uvicorn's httptools parser accepts megabytes of headers; nothing a log sender
needs comes close to the limit, and refusing early keeps such requests cheap.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from logriver_common.service_logging import request_id_var


class HeaderLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_header_bytes: int) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.max_header_bytes:
                body = orjson.dumps(
                    {
                        "error": "headers_too_large",
                        "detail": f"request headers are {size} bytes; at most "
                        f"{self.max_header_bytes} (LOGRIVER_INGEST_MAX_HEADER_BYTES)",
                        "request_id": request_id_var.get(),
                    }
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": 431,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
