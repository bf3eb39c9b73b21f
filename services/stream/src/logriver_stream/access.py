"""Who is subscribing: an API key with ``read`` scope, or a short-lived stream token.

SSE requests use the shared ``require_scope`` dependency logic for keys. A
WebSocket is not a ``Request``, so its headers are checked here against the same
key store. Browsers (EventSource, and WebSocket, which cannot set headers
either) pass a token issued by the query service as ``?token=``.

A token names the key it was issued for, and is honoured only while that key
is active: a token issued before its key was revoked opens nothing (the
key is looked up by id, through a cache of at most a few seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import Headers

from logriver_common.auth import ApiKeyStore, Scope, require_scope
from logriver_common.stream_tokens import InvalidToken, StreamTokenSettings, verify_token
from logriver_common.web.errors import ApiError

_require_read = require_scope(Scope.READ)
_MAX_KEY_CHARS = 256


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str


async def _from_token(settings: StreamTokenSettings, token: str, store: ApiKeyStore) -> Principal:
    try:
        claims = verify_token(settings, token)
    except InvalidToken as exc:
        raise ApiError(401, "unauthorized", f"invalid stream token: {exc}") from None
    if Scope.READ.value not in claims.scopes:
        raise ApiError(403, "forbidden", "this stream token lacks the `read` scope")
    key = await store.active_key(claims.key_id) if len(claims.key_id) <= _MAX_KEY_CHARS else None
    if key is None:
        raise ApiError(
            401, "unauthorized", "invalid stream token: its API key is revoked or unknown"
        )
    if Scope.READ not in key.scopes:
        raise ApiError(403, "forbidden", "the API key of this stream token lacks the `read` scope")
    return Principal(key.id)


async def authenticate_request(
    request: Request, token: str | None, settings: StreamTokenSettings
) -> Principal:
    if token is not None:
        store: ApiKeyStore = request.app.state.api_keys
        return await _from_token(settings, token, store)
    key = await _require_read(request)
    return Principal(key.id)


def _header_key(headers: Headers) -> str | None:
    header = headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = headers.get("x-api-key")
    return api_key.strip() if api_key and api_key.strip() else None


async def authenticate_headers(
    headers: Headers, token: str | None, store: ApiKeyStore, settings: StreamTokenSettings
) -> Principal:
    """The WebSocket flavour: same rules, same store, same errors."""
    if token is not None:
        return await _from_token(settings, token, store)
    plaintext = _header_key(headers)
    if plaintext is None:
        raise ApiError(
            401,
            "unauthorized",
            "send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`, "
            "or a stream token as ?token=",
        )
    key = await store.lookup(plaintext) if len(plaintext) <= _MAX_KEY_CHARS else None
    if key is None:
        raise ApiError(401, "unauthorized", "invalid or revoked API key")
    if Scope.READ not in key.scopes:
        raise ApiError(403, "forbidden", "this API key lacks the `read` scope")
    return Principal(key.id)
