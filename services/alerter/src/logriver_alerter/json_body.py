"""Bodies are JSON whatever the client labelled them, within reason.

`curl -d '{...}'` labels its body `application/x-www-form-urlencoded`, and FastAPI
then refuses it with a 422 ("Input should be a valid dictionary") that does not
point at the cause. The admin API takes nothing but JSON, so a missing type and
curl's default are read as JSON; any other non-JSON type is a 415 that says
which header to send.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON = b"application/json"
READ_AS_JSON = frozenset({b"", b"application/x-www-form-urlencoded"})


def _media_type(value: bytes) -> bytes:
    return value.split(b";", 1)[0].strip().lower()


def _is_json(media: bytes) -> bool:
    return media == JSON or (media.startswith(b"application/") and media.endswith(b"+json"))


class JsonBodyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope.get("headers") or [] if k == b"content-type"]
        media = _media_type(declared[0]) if declared else b""
        if _is_json(media):
            await self.app(scope, receive, send)
            return
        if media not in READ_AS_JSON:
            refusal = HTTPException(
                415,
                f"bodies are JSON; got Content-Type {declared[0].decode('latin-1')[:100]!r}: "
                "send Content-Type: application/json (or none)",
            )

            # Raised while the route reads its body, so the app's error handlers
            # answer in the one error shape (as BodyLimitMiddleware does).
            async def refuse() -> Message:
                raise refusal

            await self.app(scope, refuse, send)
            return
        headers = [(k, v) for k, v in scope.get("headers") or [] if k != b"content-type"]
        scope = {**scope, "headers": [*headers, (b"content-type", JSON)]}
        await self.app(scope, receive, send)
