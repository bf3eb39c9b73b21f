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


def test_a_bucket_that_would_start_before_year_one_is_a_400() -> None:
    year_one = TimeRange(datetime(1, 1, 1, tzinfo=UTC), datetime(1, 1, 2, tzinfo=UTC))
    # Epoch-aligned weeks and days start before 0001-01-01 00:00.
    for requested in ("1w", "7d", "9999999w"):
        with pytest.raises(ApiError) as info:
            bucket_seconds(year_one, requested, 1000)
        assert info.value.status_code == 400
    # A size that divides the distance to the epoch aligns exactly on year 1.
    assert bucket_seconds(year_one, "1h", 1000) == 3600
    late = TimeRange(datetime(9999, 12, 31, tzinfo=UTC), datetime(9999, 12, 31, 23, tzinfo=UTC))
    assert bucket_seconds(late, "9999999w", 1000) == 9999999 * 604800
