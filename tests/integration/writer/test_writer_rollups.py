"""Rollup counts stay exact when the writer is killed (-9) mid-batch and the batch redelivered."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from pymongo.read_concern import ReadConcern

from logriver_common.indexes import DAILY_COVERAGE_ID
from tests.conftest import StartService, Topics
from tests.integration.rollup_totals import assert_totals_match
from tests.integration.writer.helpers import (
    MongoClient,
    committed_total,
    count_logs,
    make_events,
    mongo,
    produce_events,
    stored_at_least,
    writer_env,
)
from tests.stack import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

EVENTS = 20_000


async def _event_counts(
    client: MongoClient, database: str, unit: str = "hour"
) -> Counter[tuple[Any, ...]]:
    """(hour or day, service, level) → count, computed over the stored events."""
    logs = client[database].get_collection("logs", read_concern=ReadConcern("majority"))
    pipeline: list[dict[str, Any]] = [
        {
            "$group": {
                "_id": {
                    "t": {"$dateTrunc": {"date": "$timestamp", "unit": unit}},
                    "s": "$service",
                    "l": "$level",
                },
                "n": {"$sum": 1},
            }
        }
    ]
    rows = await (await logs.aggregate(pipeline)).to_list()
    return Counter({(r["_id"]["t"], r["_id"]["s"], r["_id"]["l"]): r["n"] for r in rows})


async def _rollup_counts(client: MongoClient, database: str) -> Counter[tuple[Any, ...]]:
    rollups = client[database].get_collection("logs_rollups", read_concern=ReadConcern("majority"))
    out: Counter[tuple[Any, ...]] = Counter()
    async for doc in rollups.find({}):
        key = (doc["t"], doc["service"], doc["level"])
        out[key] += doc["n"]
        assert sum(doc["m"].values()) == doc["n"], doc  # minute counts add up to the hour
    return out


async def _daily_counts(client: MongoClient, database: str) -> Counter[tuple[Any, ...]]:
    daily = client[database].get_collection(
        "logs_rollups_daily", read_concern=ReadConcern("majority")
    )
    out: Counter[tuple[Any, ...]] = Counter()
    async for doc in daily.find({"_id": {"$ne": DAILY_COVERAGE_ID}}):
        out[(doc["t"], doc["service"], doc["level"])] += doc["n"]
        assert sum(doc["h"].values()) == doc["n"], doc  # the hours add up to the day
        assert sum(doc["hh"].values()) == doc["n"], doc  # and so do the half hours
    return out


async def _template_total(client: MongoClient, database: str) -> int:
    rollups = client[database].get_collection(
        "logs_template_rollups_daily", read_concern=ReadConcern("majority")
    )
    total = 0
    async for doc in rollups.find({}, {"n": 1, "h": 1}):
        assert sum(doc["h"].values()) == doc["n"], doc  # the hours add up to the day
        total += doc["n"]
    return total


async def test_kill_9_mid_batch_keeps_rollups_equal_to_the_stored_events(
    topics: Topics, mongo_database: str, service_process: StartService
) -> None:
    events = make_events(EVENTS // 2, prefix="roll") + make_events(
        EVENTS // 2, prefix="anon", with_ids=False
    )
    await produce_events(topics.main, events)
    env = writer_env(topics, mongo_database, batch_max_events=1_000)
    group = env["LOGRIVER_WRITER_GROUP_ID"]
    client = mongo()
    try:
        first = service_process("writer", env=env)
        await eventually(
            lambda: stored_at_least(client, mongo_database, 2_000),
            interval=0.05,
            what="writer under way",
        )
        first.kill()
        assert await committed_total(topics.main, group) < EVENTS, "finished before the kill"
        # What the killed writer left: events and counts agree already (one transaction).
        assert await _rollup_counts(client, mongo_database) == await _event_counts(
            client, mongo_database
        )
        assert await _daily_counts(client, mongo_database) == await _event_counts(
            client, mongo_database, "day"
        )
        for daily in (False, True):
            events_by = await _event_counts(client, mongo_database, "day" if daily else "hour")
            await assert_totals_match(client[mongo_database], events_by, daily=daily)

        second = service_process("writer", env=env)
        # A transaction the killed writer left open holds its rows until MongoDB aborts it
        # (transactionLifetimeLimitSeconds, 60 s by default): the restart may wait for it.
        await eventually(
            lambda: stored_at_least(client, mongo_database, EVENTS),
            within=150,
            what="all events stored after the restart",
        )
        assert second.running()
        stored = await count_logs(client, mongo_database)
        assert stored == EVENTS
        rollups = await _rollup_counts(client, mongo_database)
        assert rollups == await _event_counts(client, mongo_database)
        assert sum(rollups.values()) == EVENTS
        assert await _daily_counts(client, mongo_database) == await _event_counts(
            client, mongo_database, "day"
        )
        for daily in (False, True):
            events_by = await _event_counts(client, mongo_database, "day" if daily else "hour")
            await assert_totals_match(client[mongo_database], events_by, daily=daily)
        assert await _template_total(client, mongo_database) == EVENTS
        db = client[mongo_database]
        assert await db["logs"].count_documents({"th": {"$exists": False}}) == 0
        # Every stored template has its dictionary entry.
        hashes = set(await db["logs"].distinct("th"))
        assert hashes == set(await db["logs_templates"].distinct("_id"))
    finally:
        await client.close()
