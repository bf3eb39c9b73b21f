from __future__ import annotations

import orjson
import pytest
from pydantic import SecretStr

from logriver_common import signing
from logriver_common.stream_tokens import (
    InvalidToken,
    StreamTokenSettings,
    issue_token,
    verify_token,
)

SETTINGS = StreamTokenSettings(secret=SecretStr("s1"), ttl_seconds=60)


def test_round_trip() -> None:
    token, expires_at = issue_token(SETTINGS, "k1", ["read"])
    claims = verify_token(SETTINGS, token)
    assert claims.key_id == "k1"
    assert claims.scopes == ["read"]
    assert claims.expires_at == expires_at


@pytest.mark.parametrize(
    "token", ["", "a", "a.b.c", "x" * 3000, "eyJ9.sig", "not base64!.###", "....."]
)
def test_malformed_tokens_are_rejected(token: str) -> None:
    with pytest.raises(InvalidToken):
        verify_token(SETTINGS, token)


def test_other_secret_and_tampering_are_rejected() -> None:
    token, _ = issue_token(SETTINGS, "k1", ["read"])
    with pytest.raises(InvalidToken, match="signature"):
        verify_token(StreamTokenSettings(secret=SecretStr("s2")), token)
    payload, signature = token.split(".")
    forged, _ = issue_token(SETTINGS, "admin", ["read", "admin"])
    with pytest.raises(InvalidToken, match="signature"):
        verify_token(SETTINGS, f"{forged.split('.')[0]}.{signature}")
    assert payload


def test_expired_tokens_are_rejected() -> None:
    token, _ = issue_token(StreamTokenSettings(secret=SecretStr("s1"), ttl_seconds=-1), "k", [])
    with pytest.raises(InvalidToken, match="expired"):
        verify_token(SETTINGS, token)


@pytest.mark.parametrize(
    "claims",
    [
        {"key_id": "", "scopes": ["read"], "expires_at": 1e12},
        {"key_id": "k" * 129, "scopes": ["read"], "expires_at": 1e12},
        {"key_id": "k", "scopes": ["read"] * 9, "expires_at": 1e12},
        {"key_id": "k", "scopes": ["r" * 33], "expires_at": 1e12},
        {"key_id": 7, "scopes": ["read"], "expires_at": 1e12},
        {"key_id": "k", "scopes": "read", "expires_at": 1e12},
        {"key_id": "k", "scopes": ["read"], "expires_at": "never"},
        ["not", "an", "object"],
    ],
)
def test_well_signed_but_malformed_claims_are_rejected(claims: object) -> None:
    # Only someone with the secret can sign; still, the claims are validated.
    token = signing.sign(SETTINGS.secret, orjson.dumps(claims))
    with pytest.raises(InvalidToken, match="malformed token claims"):
        verify_token(SETTINGS, token)


@pytest.mark.parametrize("token", ["é.é", "a.é", "é.b", "\u0000.\u0000"])
def test_non_ascii_tokens_are_malformed_not_an_error(token: str) -> None:
    settings = StreamTokenSettings(secret=SecretStr("s" * 32))
    with pytest.raises(InvalidToken):
        verify_token(settings, token)
