"""Cursors are opaque, signed and bound to their query (no network)."""

from __future__ import annotations

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
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="CURSOR_SECRET"):
        QuerySettings()
    monkeypatch.setenv("LOGRIVER_QUERY_CURSOR_SECRET", "a-real-secret")
    assert QuerySettings().cursor_secret.get_secret_value() != LOCAL_CURSOR_SECRET
