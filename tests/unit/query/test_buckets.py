"""Histogram bucket choice (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from logriver_common.web.errors import ApiError
from logriver_query.aggregations import bucket_seconds
from logriver_query.filters import TimeRange

START = datetime(2026, 1, 1, tzinfo=UTC)


def window(**delta: float) -> TimeRange:
    return TimeRange(START, START + timedelta(**delta))


@pytest.mark.parametrize(
    ("span", "expected"),
    [({"minutes": 1}, 1), ({"hours": 1}, 60), ({"hours": 24}, 1800), ({"days": 31}, 86400)],
)
def test_auto_bucket_gives_at_most_60_buckets(span: dict[str, float], expected: int) -> None:
    assert bucket_seconds(window(**span), None, 1000) == expected
    assert bucket_seconds(window(**span), "auto", 1000) == expected


def test_requested_bucket_and_its_limits() -> None:
    assert bucket_seconds(window(hours=24), "5m", 1000) == 300
    with pytest.raises(ApiError, match="buckets"):
        bucket_seconds(window(days=31), "1s", 1000)
    for bad in ("0s", "5 minutes", "{$gt:1}"):
        with pytest.raises(ApiError):
            bucket_seconds(window(hours=1), bad, 1000)
