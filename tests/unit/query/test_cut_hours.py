"""Which way each hour a top-messages window cuts is counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from pymongo.errors import OperationFailure

from logriver_query import top_messages
from logriver_query.filters import LogFilter, TimeRange
from logriver_query.rollup_counts import HOUR_MS
from logriver_query.top_messages import CutHour, cut_hours

MIN = 60_000
H = 100 * HOUR_MS  # an hour boundary
FAR = 10**15  # a "now" long after every window


def test_each_cut_hour_reads_the_smaller_part() -> None:
    older, newer = cut_hours(H - 5 * MIN, H + 50 * MIN, FAR)
    assert older == CutHour(H - HOUR_MS, (H - 5 * MIN, H), complement=False)
    assert newer == CutHour(H, (H, H + 50 * MIN), complement=True)
    assert newer.outside == [(H + 50 * MIN, H + HOUR_MS)]
    older, newer = cut_hours(H - 55 * MIN, H + 10 * MIN, FAR)
    assert (older.complement, newer.complement) == (True, False)
    assert older.outside == [(H - HOUR_MS, H - 55 * MIN)]


def test_time_after_now_holds_no_events() -> None:
    """A window ending now: what lies after it in its last hour is the future, so that hour
    is the rollups' whole hour less (almost surely) nothing."""
    now = H + 5 * MIN
    (newer,) = cut_hours(H - HOUR_MS, now, now)
    assert newer.complement
    # Even a window ending in the future counts only up to now.
    (newer,) = cut_hours(H - HOUR_MS, H + 30 * MIN, now)
    assert newer.complement
    (newer,) = cut_hours(H - HOUR_MS, H + 30 * MIN, H + 50 * MIN)
    assert newer.complement  # 30 minutes inside, 20 outside before now
    (newer,) = cut_hours(H - HOUR_MS, H + 10 * MIN, H + 50 * MIN)
    assert not newer.complement  # 10 minutes inside, 40 outside before now


def test_aligned_edges_cut_nothing() -> None:
    assert cut_hours(H - 24 * HOUR_MS, H, FAR) == []
    (older,) = cut_hours(H - 90 * MIN, H, FAR)
    assert older.inside == (H - 90 * MIN, H - HOUR_MS)
    assert older.start == H - 2 * HOUR_MS
    assert not older.complement  # 30 minutes inside, 30 outside: a tie reads the events


async def test_a_snapshot_the_server_cannot_serve_counts_again_without_subtracting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SnapshotUnavailable (a collection newer than the snapshot) or SnapshotTooOld: the
    same count again, every cut hour read from its events (no snapshot needed)."""
    calls: list[list[CutHour]] = []

    async def count(
        collection: Any, flt: LogFilter, cuts: list[CutHour], **_: Any
    ) -> dict[Any, Any]:
        calls.append(cuts)
        if any(cut.complement for cut in cuts):
            raise OperationFailure("no snapshot", code=246)
        return {}

    monkeypatch.setattr(top_messages, "_count", count)
    now = datetime(2026, 11, 27, 12, 55, tzinfo=UTC)
    window = TimeRange(now - timedelta(hours=24), now)
    body = await top_messages.top_messages(
        cast(Any, None), LogFilter(window=window), limit=10, max_time_ms=1_000, now=now
    )
    assert body["messages"] == []
    assert [any(cut.complement for cut in cuts) for cuts in calls] == [True, False]
    assert [cut.inside for cut in calls[0]] == [cut.inside for cut in calls[1]]

    async def failing(*args: Any, **kwargs: Any) -> dict[Any, Any]:
        raise OperationFailure("other", code=2)

    monkeypatch.setattr(top_messages, "_count", failing)
    with pytest.raises(OperationFailure):
        await top_messages.top_messages(
            cast(Any, None), LogFilter(window=window), limit=10, max_time_ms=1_000, now=now
        )
