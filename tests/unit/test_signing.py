"""The one signing module: round trip, and every malformed or forged token refused."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from logriver_common import signing

SECRET = SecretStr("s3cret")


def test_round_trip() -> None:
    token = signing.sign(SECRET, b'{"a": 1}')
    assert signing.verify(SECRET, token, max_length=1024) == b'{"a": 1}'


def test_another_secret_is_a_mismatch() -> None:
    token = signing.sign(SECRET, b"x")
    with pytest.raises(signing.SignatureMismatch):
        signing.verify(SecretStr("other"), token, max_length=1024)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "no-dot",
        "a.b.c",
        "é.abc",  # non-ASCII: compare_digest would raise TypeError
        "a" * 2000 + ".b",
        "\x00.\x00",
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(signing.BadSignature):
        signing.verify(SECRET, token, max_length=1024)


def test_edited_payload_is_a_mismatch() -> None:
    payload, sig = signing.sign(SECRET, b"amount=1").split(".")
    forged = signing.b64encode(b"amount=9")
    with pytest.raises(signing.SignatureMismatch):
        signing.verify(SECRET, f"{forged}.{sig}", max_length=1024)
    assert payload != forged


def test_bad_base64_with_a_valid_signature_is_malformed() -> None:
    payload = "a"  # one base64 character cannot be decoded
    token = f"{payload}.{signing.signature(SECRET, payload)}"
    with pytest.raises(signing.MalformedToken):
        signing.verify(SECRET, token, max_length=1024)
