"""Daily counts for the days stored before the writer kept them, built from the hourly ones.

The daily rollups are complete from the coverage marker's ``since`` on
(``ensure_daily_coverage``: the start of time for a new store, else the day after the
first writer that keeps them started). The query service reads days before ``since`` from
the hourly rollups, so answers are exact at every step; this task only makes them cheaper.
It walks back one day at a time, newest first: in one transaction it reads the day's
hourly documents, writes each ``(service, level)``'s daily document from them (replacing
what late events had already added, which the hourly documents hold too), replaces the
day's hourly and daily totals with sums of them, and moves ``since`` back to that day. A
writer transaction counting an event into the same day meanwhile touches the same daily
document, so one of the two transactions aborts on the write conflict and is retried:
neither count is lost or counted twice. (A total the writer creates meanwhile is not in
the transaction's snapshot, and neither are its events in the hourly documents it reads:
the new total stays, and its events are counted once.)
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from logriver_common.documents import ERROR_LEVELS
from logriver_common.indexes import ALL, DAILY_COVERAGE_ID, DAY, ERRORS, rollup_collection_names
from logriver_writer.rollups import counts_id, epoch_ms

log = logging.getLogger(__name__)

Document = dict[str, Any]
RETRY_DELAY_S = 5.0


async def backfill_daily(
    collection: AsyncCollection[Document], *, retry_delay_s: float = RETRY_DELAY_S
) -> int:
    """Build the daily rollups of every day before coverage; returns how many days it built.

    Stops when coverage reaches the oldest hourly rollup. A failure is logged and the
    same day is tried again after ``retry_delay_s`` (the writer must never stop for this).
    """
    names = rollup_collection_names(collection.name)
    db = collection.database
    hourly = db[names.counts]
    daily = db[names.daily]
    totals = (db[names.totals], db[names.daily_totals])
    built = 0
    while True:
        try:
            oldest = await hourly.find_one({}, {"t": 1}, sort=[("t", 1)])
            coverage = await daily.find_one({"_id": DAILY_COVERAGE_ID})
            if oldest is None or coverage is None or oldest["t"] >= coverage["since"]:
                return built
            since: datetime = coverage["since"]
            day = since - DAY
            build = partial(
                _build_day, hourly=hourly, daily=daily, totals=totals, day=day, since=since
            )
            async with db.client.start_session() as session:
                await session.with_transaction(
                    build,
                    read_concern=ReadConcern("snapshot"),
                    write_concern=WriteConcern(w="majority"),
                )
            built += 1
            log.info("daily rollups built", extra={"day": day.date().isoformat()})
        except PyMongoError as exc:
            log.warning("daily rollup backfill failed; retrying", extra={"error": str(exc)})
            await asyncio.sleep(retry_delay_s)


async def _build_day(
    session: AsyncClientSession,
    *,
    hourly: AsyncCollection[Document],
    daily: AsyncCollection[Document],
    totals: tuple[AsyncCollection[Document], AsyncCollection[Document]],
    day: datetime,
    since: datetime,
) -> None:
    # Another writer may have built this day already: then there is nothing to do here.
    coverage = await daily.find_one({"_id": DAILY_COVERAGE_ID}, session=session)
    if coverage is None or coverage["since"] != since:
        return
    documents: dict[tuple[str, str], Document] = {}
    hour_totals: dict[tuple[datetime, str, str], Document] = {}
    hours = hourly.find({"t": {"$gte": day, "$lt": day + DAY}}, session=session)
    async for hour_doc in hours:
        for service, level in _totals_of(hour_doc["service"], hour_doc["level"]):
            _add_into(hour_totals, (hour_doc["t"], service, level), hour_doc, ("m", "q"))
        key = (hour_doc["service"], hour_doc["level"])
        document = documents.get(key)
        if document is None:
            document = documents[key] = {
                "t": day,
                "service": key[0],
                "level": key[1],
                "n": 0,
                "h": {},
                "hh": {},
                "last": hour_doc["last"],
                # As the writer sets it: the day's start plus the rollups' retention.
                "expire_at": day + (hour_doc["expire_at"] - hour_doc["t"]),
            }
        hour = (hour_doc["t"] - day) // timedelta(hours=1)
        document["n"] += hour_doc["n"]
        document["h"][str(hour)] = hour_doc["n"]
        # Half hours from the hour's minute counts (`m.0` .. `m.59`).
        halves = [0, 0]
        for minute, n in hour_doc["m"].items():
            halves[int(minute) // 30] += n
        for half, n in enumerate(halves):
            if n:
                document["hh"][str(2 * hour + half)] = n
        document["last"] = max(document["last"], hour_doc["last"])
    day_totals: dict[tuple[datetime, str, str], Document] = {}
    for (service, level), document in documents.items():
        await daily.replace_one(
            {"_id": counts_id(epoch_ms(day), service, level)},
            document,
            upsert=True,
            session=session,
        )
        for total_of in _totals_of(service, level):
            _add_into(day_totals, (day, *total_of), document, ("h", "hh"))
    for collection, sums in zip(totals, (hour_totals, day_totals), strict=True):
        # What the writer counted into the day's totals is in the hourly documents too.
        await collection.delete_many({"t": {"$gte": day, "$lt": day + DAY}}, session=session)
        if sums:
            await collection.insert_many(
                [
                    {"_id": counts_id(epoch_ms(t), service, level, _shard(service)), **total}
                    for (t, service, level), total in sums.items()
                ],
                session=session,
            )
    await daily.update_one({"_id": DAILY_COVERAGE_ID}, {"$set": {"since": day}}, session=session)


def _totals_of(service: str, level: str) -> list[tuple[str, str]]:
    """The ``(service, level)`` of the totals a service's counts at a level go into."""
    totals = [(ALL, level), (service, ALL)]
    if level in ERROR_LEVELS:
        totals.append((service, ERRORS))
    return totals


def _shard(service: str) -> str:
    # Per-level totals are kept per partition; the backfill's own is "b" (no writer's).
    return "b" if service == ALL else ""


def _add_into(
    totals: dict[tuple[datetime, str, str], Document],
    key: tuple[datetime, str, str],
    source: Document,
    parts: tuple[str, ...],
) -> None:
    """Add a counts document's ``n``, ``parts`` and ``last`` into the total at ``key``."""
    total = totals.get(key)
    if total is None:
        total = totals[key] = {
            "t": key[0],
            "service": key[1],
            "level": key[2],
            "n": 0,
            **{part: {} for part in parts},
            "last": source["last"],
            "expire_at": source["expire_at"],
        }
    total["n"] += source["n"]
    for part in parts:
        into = total[part]
        for k, n in source.get(part, {}).items():
            into[k] = into.get(k, 0) + n
    total["last"] = max(total["last"], source["last"])
