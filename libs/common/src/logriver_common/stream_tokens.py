"""Short-lived tokens that let a browser's EventSource authenticate to the stream service.

EventSource cannot send headers, so the query service (which the console
already talks to with an API key) issues a token with ``read`` scope that the
console puts in the stream URL's query string. The token is
``<base64url(json claims)>.<base64url(HMAC-SHA256)>`` under a secret both
services share (``LOGRIVER_STREAM_TOKEN_SECRET``); it expires in minutes, so a
leaked URL is worth little.

A token is tied to the API key it was issued for (``key_id``): the stream
service honours it only while that key is active, so revoking the key also
invalidates every token issued for it.
"""

from __future__ import annotations

import time
from typing import Annotated

import orjson
from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from logriver_common import signing
from logriver_common.settings import local_secret

LOCAL_SECRET = "logriver-local-stream-token-secret"  # noqa: S105 - local stack only


class StreamTokenSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOGRIVER_STREAM_TOKEN_", extra="ignore")

    secret: SecretStr = local_secret(LOCAL_SECRET)
    ttl_seconds: int = 300


class StreamTokenClaims(BaseModel):
    key_id: str = Field(min_length=1, max_length=128)
    scopes: list[Annotated[str, Field(max_length=32)]] = Field(max_length=8)
    expires_at: float


class InvalidToken(ValueError):
    pass


def issue_token(settings: StreamTokenSettings, key_id: str, scopes: list[str]) -> tuple[str, float]:
    """A token for ``key_id`` and its expiry (unix seconds)."""
    expires_at = time.time() + settings.ttl_seconds
    claims = StreamTokenClaims(key_id=key_id, scopes=scopes, expires_at=expires_at)
    return signing.sign(settings.secret, orjson.dumps(claims.model_dump())), expires_at


def verify_token(settings: StreamTokenSettings, token: str) -> StreamTokenClaims:
    """The claims of a valid, unexpired token; raises InvalidToken otherwise."""
    try:
        payload = signing.verify(settings.secret, token, max_length=2048)
    except signing.SignatureMismatch:
        raise InvalidToken("bad token signature") from None
    except signing.MalformedToken:
        raise InvalidToken("malformed token") from None
    try:
        claims = StreamTokenClaims.model_validate_json(payload)
    except (ValidationError, ValueError) as exc:
        raise InvalidToken("malformed token claims") from exc
    if claims.expires_at < time.time():
        raise InvalidToken("token expired")
    return claims
