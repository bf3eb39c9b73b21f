"""Daily rollups: exact answers while the daily counts cover only recent days, and after the
writer's backfill has built the older days from the hourly counts."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, WriteConcern

from logriver_common.indexes import DAILY_COVERAGE_ID, EPOCH, ensure_daily_coverage
from logriver_query.rollup_counts import forget_daily_coverage
from logriver_writer.daily_backfill import backfill_daily
from logriver_writer.rollups import counts_id, epoch_ms
from tests.integration.query.conftest import (
    SERVICES,
    QueryApp,
    query_settings,
    spread_events,
    start_query_app,
    stored,
)
from tests.integration.rollup_totals import assert_totals_match
from tests.stack import STACK

pytestmark = [pytest.mark.integration]
Docs = list[dict[str, Any]]


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def day_of(value: datetime) -> datetime:
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def hour_of(value: datetime) -> datetime:
    return datetime(value.year, value.month, value.day, value.hour, tzinfo=UTC)


@pytest.fixture(scope="module")
async def four_days(stack: None) -> AsyncIterator[tuple[QueryApp, Docs, datetime, str]]:
    """6,000 events at random times over 100 hours, in four services."""
    docs, newest = spread_events(6_000, 100, seed=5, message="daily event")
    async with stored(docs, "test_daily") as database:
        async for app in start_query_app(query_settings(database)):
            yield app, docs, newest, database


async def assert_histograms_exact(app: QueryApp, docs: Docs, newest: datetime, odd: float) -> None:
    """Every bucket of 15 and 30 min, 1 h and 3 h histograms over 90 odd hours equals the
    events'."""
    until = newest - timedelta(seconds=odd * 60)
    since = until - timedelta(hours=90, seconds=odd)
    in_window = [d for d in docs if since <= d["timestamp"] < until]
    for bucket, size_ms in (
        ("15m", 900_000),
        ("30m", 1_800_000),
        ("1h", 3_600_000),
        ("3h", 10_800_000),
    ):
        params = {"since": iso(since), "until": iso(until), "bucket": bucket}
        resp = await app.http.get("/v1/stats/histogram", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["source"] == "rollups"
        want: dict[str, Counter[str]] = defaultdict(Counter)
        for d in in_window:
            ms = epoch_ms(d["timestamp"])
            want[iso(datetime.fromtimestamp(ms // size_ms * size_ms / 1000, UTC))][d["level"]] += 1
        got = {b["start"]: Counter(b["counts"]) for b in body["buckets"] if b["total"]}
        assert got == want, bucket
    # Per service over all levels (the per-service totals where they are complete).
    params = {"since": iso(since), "until": iso(until), "bucket": "30m", "group_by": "service"}
    resp = await app.http.get("/v1/stats/histogram", params=params)
    assert resp.status_code == 200, resp.text
    by_service: dict[str, Counter[str]] = defaultdict(Counter)
    for d in in_window:
        ms = epoch_ms(d["timestamp"])
        by_service[iso(datetime.fromtimestamp(ms // 1_800_000 * 1_800_000 / 1000, UTC))][
            d["service"]
        ] += 1
    assert {b["start"]: Counter(b["counts"]) for b in resp.json()["buckets"] if b["total"]} == (
        by_service
    )
    # Summaries (one bucket): whole days, the days the window cuts, or (20 h) no whole day.
    for start in (since, until - timedelta(hours=20)):
        window = [d for d in docs if start <= d["timestamp"] < until]
        params = {"since": iso(start), "until": iso(until)}
        resp = await app.http.get("/v1/stats/services", params=params)
        assert resp.status_code == 200, resp.text
        services = resp.json()["services"]
        assert {s["service"]: s["count"] for s in services} == Counter(d["service"] for d in window)
        assert {s["service"]: s["errors"] for s in services if s["errors"]} == Counter(
            d["service"] for d in window if d["level"] in ("ERROR", "CRITICAL")
        )
        resp = await app.http.get("/v1/stats/errors", params=params)
        assert resp.status_code == 200, resp.text
        assert {s["service"]: s["errors"] for s in resp.json()["services"]} == Counter(
            d["service"] for d in window if d["level"] in ("ERROR", "CRITICAL")
        )


async def test_counts_stay_exact_before_and_after_the_backfill_of_older_days(
    four_days: tuple[QueryApp, Docs, datetime, str],
) -> None:
    app, docs, newest, database = four_days
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
    try:
        db = client.get_database(database, write_concern=WriteConcern(w=3, wtimeout=60_000))
        daily = db["logs_rollups_daily"]
        today = day_of(newest)
        # As if the writer began keeping daily counts today: older days have none, except
        # a partial one that a late event added since (the backfill must replace it).
        await daily.delete_many({"t": {"$lt": today}})
        await daily.update_one({"_id": DAILY_COVERAGE_ID}, {"$set": {"since": today}})
        partial_day = today - timedelta(days=2)
        await daily.insert_one(
            {
                "_id": counts_id(epoch_ms(partial_day), SERVICES[0], "INFO"),
                "t": partial_day,
                "service": SERVICES[0],
                "level": "INFO",
                "n": 1,
                "h": {"5": 1},
                "hh": {"11": 1},
                "last": partial_day,
                "expire_at": partial_day + timedelta(days=400),
            }
        )
        forget_daily_coverage()
        await assert_histograms_exact(app, docs, newest, odd=17.3)

        built = await backfill_daily(db["logs"], retry_delay_s=0.1)
        oldest = min(d["timestamp"] for d in docs)
        assert built == (today - day_of(oldest)).days
        coverage = await daily.find_one({"_id": DAILY_COVERAGE_ID})
        assert coverage is not None
        assert coverage["since"] == day_of(oldest)
        # Every daily document now equals a count over that day's events.
        want = Counter((day_of(d["timestamp"]), d["service"], d["level"]) for d in docs)
        got: Counter[tuple[datetime, str, str]] = Counter()
        async for doc in daily.find({"_id": {"$ne": DAILY_COVERAGE_ID}}):
            got[(doc["t"], doc["service"], doc["level"])] += doc["n"]
            assert sum(doc["h"].values()) == doc["n"], doc
            assert sum(doc["hh"].values()) == doc["n"], doc
        assert got == want
        # And the totals: the backfill replaced what the loader had counted into them.
        hours = Counter((hour_of(d["timestamp"]), d["service"], d["level"]) for d in docs)
        await assert_totals_match(db, hours, daily=False)
        await assert_totals_match(db, want, daily=True)
        assert await backfill_daily(db["logs"]) == 0  # nothing left to build

        forget_daily_coverage()
        await assert_histograms_exact(app, docs, newest, odd=23.9)
    finally:
        await client.close()


@pytest.mark.parametrize("old_marker", ["coverage", "coverage-v2"])
async def test_daily_counts_from_an_older_layout_are_rebuilt(stack: None, old_marker: str) -> None:
    """A store whose daily documents predate `hh` (marker `coverage`) or that has no totals
    (`coverage-v2`) gets a new marker from tomorrow on; the backfill then rebuilds every day
    with its half hours and totals."""
    docs, _ = spread_events(2_000, 60, seed=11, message="upgrade event")
    async with stored(docs, "test_daily_upgrade") as database:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
        try:
            db = client.get_database(database, write_concern=WriteConcern(w=3, wtimeout=60_000))
            daily = db["logs_rollups_daily"]
            # As the previous writer left it.
            await daily.delete_one({"_id": DAILY_COVERAGE_ID})
            if old_marker == "coverage":
                await daily.update_many({}, {"$unset": {"hh": ""}})
            await db["logs_rollups_totals"].delete_many({})
            await db["logs_rollups_daily_totals"].delete_many({})
            await daily.insert_one({"_id": old_marker, "since": EPOCH})

            tomorrow = {day_of(datetime.now(UTC)) + timedelta(days=1)}
            await ensure_daily_coverage(db["logs"])
            tomorrow.add(day_of(datetime.now(UTC)) + timedelta(days=1))  # midnight between
            assert await daily.find_one({"_id": old_marker}) is None
            marker = await daily.find_one({"_id": DAILY_COVERAGE_ID})
            assert marker is not None
            assert marker["since"] in tomorrow

            await backfill_daily(db["logs"], retry_delay_s=0.1)
            want = Counter((day_of(d["timestamp"]), d["service"], d["level"]) for d in docs)
            got: Counter[tuple[datetime, str, str]] = Counter()
            async for doc in daily.find({"_id": {"$ne": DAILY_COVERAGE_ID}}):
                got[(doc["t"], doc["service"], doc["level"])] += sum(doc["hh"].values())
            assert got == want
            await assert_totals_match(db, want, daily=True)
        finally:
            await client.close()
