"""Daily counts for the days stored before the writer kept them, built from the hourly ones.

The daily rollups are complete from the coverage marker's ``since`` on
(``ensure_daily_coverage``: the start of time for a new store, else the day after the
first writer that keeps them started). The query service reads days before ``since`` from
the hourly rollups, so answers are exact at every step; this task only makes them cheaper.
It walks back one day at a time, newest first: in one transaction it reads the day's
hourly documents, writes each ``(service, level)``'s daily document from them (replacing
what late events had already added, which the hourly documents hold too) and moves
``since`` back to that day. A writer transaction counting an event into the same day
meanwhile touches the same daily document, so one of the two transactions aborts on the
write conflict and is retried: neither count is lost or counted twice.
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

from logriver_common.indexes import DAILY_COVERAGE_ID, DAY, rollup_collection_names
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
    built = 0
    while True:
        try:
            oldest = await hourly.find_one({}, {"t": 1}, sort=[("t", 1)])
            coverage = await daily.find_one({"_id": DAILY_COVERAGE_ID})
            if oldest is None or coverage is None or oldest["t"] >= coverage["since"]:
                return built
            since: datetime = coverage["since"]
            day = since - DAY
            build = partial(_build_day, hourly=hourly, daily=daily, day=day, since=since)
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
    day: datetime,
    since: datetime,
) -> None:
    # Another writer may have built this day already: then there is nothing to do here.
    coverage = await daily.find_one({"_id": DAILY_COVERAGE_ID}, session=session)
    if coverage is None or coverage["since"] != since:
        return
    documents: dict[tuple[str, str], Document] = {}
    hours = hourly.find({"t": {"$gte": day, "$lt": day + DAY}}, session=session)
    async for hour_doc in hours:
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
    for (service, level), document in documents.items():
        await daily.replace_one(
            {"_id": counts_id(epoch_ms(day), service, level)},
            document,
            upsert=True,
            session=session,
        )
    await daily.update_one({"_id": DAILY_COVERAGE_ID}, {"$set": {"since": day}}, session=session)
