"""Cursors are opaque, signed and bound to their query (no network)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from logriver_query import cursor
from logriver_query.filters import TimeRange
from logriver_query.settings import LOCAL_CURSOR_SECRET, QuerySettings

SECRET = SecretStr("s3cret")
WINDOW = TimeRange(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
POSITION = cursor.Position(1_767_225_600_123, "evt-1", "desc", "f" * 32, WINDOW)


def test_round_trip() -> None:
    token = cursor.encode(POSITION, SECRET)
    assert "evt-1" not in token  # opaque to the eye, if not encrypted
    assert cursor.decode(token, SECRET, filter_hash="f" * 32, order="desc") == POSITION


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-1],
        lambda t: t[: len(t) // 2],
        lambda t: t.replace(".", ""),
        lambda t: ("A" if t[0] != "A" else "B") + t[1:],
        lambda t: t + ".x",
        lambda t: "x" * 5000,
        lambda t: "",
    ],
)
def test_tampered_or_truncated_cursors_fail(mutate: object) -> None:
    token = cursor.encode(POSITION, SECRET)
    with pytest.raises(cursor.InvalidCursor):
        cursor.decode(mutate(token), SECRET, filter_hash="f" * 32, order="desc")  # type: ignore[operator]


def test_cursor_from_another_query_order_or_secret_fails() -> None:
    token = cursor.encode(POSITION, SECRET)
    with pytest.raises(cursor.InvalidCursor, match="different query"):
        cursor.decode(token, SECRET, filter_hash="0" * 32, order="desc")
    with pytest.raises(cursor.InvalidCursor, match="sort order"):
        cursor.decode(token, SECRET, filter_hash="f" * 32, order="asc")
    with pytest.raises(cursor.InvalidCursor, match="signature"):
        cursor.decode(token, SecretStr("other"), filter_hash="f" * 32, order="desc")


def test_after_breaks_timestamp_ties_by_id() -> None:
    at = cursor.from_ms(POSITION.timestamp_ms)
    assert at == datetime(2026, 1, 1, 0, 0, 0, 123_000, tzinfo=UTC)
    assert cursor.to_ms(at + timedelta(milliseconds=1)) == POSITION.timestamp_ms + 1
    assert POSITION.after() == {
        "$or": [{"timestamp": {"$lt": at}}, {"timestamp": at, "_id": {"$lt": "evt-1"}}]
    }


def test_production_refuses_the_local_cursor_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "LOGRIVER_MODE": "production",
        "LOGRIVER_MONGO_URI": "mongodb://db/",
        "LOGRIVER_REDIS_URL": "redis://r/0",
        "LOGRIVER_POSTGRES_DSN": "postgresql://u:p@pg/db",
        "LOGRIVER_STREAM_TOKEN_SECRET": "a-real-token-secret",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="CURSOR_SECRET"):
        QuerySettings()
    monkeypatch.setenv("LOGRIVER_QUERY_CURSOR_SECRET", "a-real-secret")
    assert QuerySettings().cursor_secret.get_secret_value() != LOCAL_CURSOR_SECRET


def _signed(values: object) -> str:
    """A cursor signed with the secret, as someone who leaked it could make."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    payload = b64(json.dumps(values).encode())
    mac = hmac.new(SECRET.get_secret_value().encode(), payload.encode(), hashlib.sha256)
    return f"{payload}.{b64(mac.digest())}"


def test_the_test_signature_is_the_real_one() -> None:
    token = _signed([1, 5, "evt-1", "desc", "f" * 32, 0, 10])
    assert cursor.decode(token, SECRET, filter_hash="f" * 32, order="desc").timestamp_ms == 5


@pytest.mark.parametrize(
    "token",
    [
        "é.é",
        "abc.\u00ff\u00ff",
        "\x00.\x00",
        ".",
        "a.b",
        # Signed (a leaked secret), but positions outside any datetime.
        _signed([1, 10**18, "evt-1", "desc", "f" * 32, 0, 1]),
        _signed([1, 0, "evt-1", "desc", "f" * 32, -(10**17), 1]),
        _signed([1, 0, "evt-1", "desc", "f" * 32, 0, 10**30]),
        _signed([1, 0, "$where", "desc", "f" * 32, 0, 1]),
        _signed([1, 0.5, "evt-1", "desc", "f" * 32, 0, 1]),
        _signed({"v": 1}),
    ],
)
def test_hostile_cursors_are_invalid_not_errors(token: str) -> None:
    with pytest.raises(cursor.InvalidCursor):
        cursor.decode(token, SECRET, filter_hash="f" * 32, order="desc")
