"""HMAC-SHA256 signed tokens: ``base64url(payload).base64url(signature)``.

The one signing scheme for every opaque token logriver hands out (stream
tokens, pagination cursors). Callers own what the payload means; this module
owns the encoding, the constant-time comparison and the refusal of anything
that is not a well-formed, correctly signed token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from pydantic import SecretStr


class BadSignature(ValueError):
    """The token is malformed or its signature does not match."""


class MalformedToken(BadSignature):
    """Not ``base64url.base64url`` (too long, non-ASCII, bad padding, ...)."""


class SignatureMismatch(BadSignature):
    """Well formed, but not signed under this secret (forged, edited or truncated)."""


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    """Unpadded base64url; raises MalformedToken on anything else."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MalformedToken("malformed token") from None


def signature(secret: SecretStr, payload: str) -> str:
    digest = hmac.new(secret.get_secret_value().encode(), payload.encode(), hashlib.sha256)
    return b64encode(digest.digest())


def sign(secret: SecretStr, data: bytes) -> str:
    """A token carrying ``data``, signed under ``secret``."""
    payload = b64encode(data)
    return f"{payload}.{signature(secret, payload)}"


def verify(secret: SecretStr, token: str, *, max_length: int) -> bytes:
    """The payload bytes of a correctly signed token; BadSignature otherwise.

    Non-ASCII text is refused before the comparison: ``hmac.compare_digest``
    raises TypeError on it, which would surface as a 500.
    """
    if len(token) > max_length or token.count(".") != 1 or not token.isascii():
        raise MalformedToken("malformed token")
    payload, sig = token.split(".")
    if not hmac.compare_digest(signature(secret, payload), sig):
        raise SignatureMismatch("signature does not match")
    return b64decode(payload)
