"""Rebuild window state for newly assigned partitions from what the writer stored.

After a restart or rebalance the consumer resumes at the committed offset, so
the records before it will not be read again, yet the windows need them. The
writer has stored them in MongoDB: per-second counts by (service, level) are
aggregated there. Records after the committed offset will be read again from
Kafka; those the writer has already stored are remembered by id and skipped,
so nothing is counted twice. Which records those are is bounded by the
``received_at`` saved with the last commit (``alerter_progress``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiokafka.partitioner import murmur2
from pymongo.asynchronous.collection import AsyncCollection

from logriver_alerter.windows import ServiceWindow
from logriver_common.documents import LEVELS

# Records committed just before a crash may carry slightly older received_at values.
OVERLAP_MARGIN = timedelta(seconds=30)
MAX_SKIP_IDS = 500_000
SAMPLES_PER_SERVICE = 200


def partition_for(service: str, partitions: int) -> int:
    """Kafka's default partitioner for a string key (what the producers use)."""
    return (int(murmur2(service.encode())) & 0x7FFFFFFF) % partitions


@dataclass
class Rebuilt:
    windows: dict[int, dict[str, ServiceWindow]] = field(default_factory=dict)
    skip_ids: dict[int, set[str]] = field(default_factory=dict)
    events: int = 0


async def rebuild(
    collection: AsyncCollection[dict[str, Any]],
    *,
    partitions: set[int],
    partition_count: int,
    since: datetime,
    committed_at: dict[int, datetime],
) -> Rebuilt:
    """Windows for the services on ``partitions`` with events since ``since``.

    Only partitions in ``committed_at`` (ones this group has evaluated before)
    are rebuilt: for the others the consumer reads everything from Kafka anyway.
    """
    out = Rebuilt(windows={p: {} for p in partitions}, skip_ids={p: set() for p in partitions})
    wanted = {p for p in partitions if p in committed_at}
    if not wanted:
        return out
    pipeline: list[dict[str, Any]] = [
        {"$match": {"timestamp": {"$gte": since}}},
        {
            "$group": {
                "_id": {
                    "service": "$service",
                    "level": "$level",
                    "second": {"$dateTrunc": {"date": "$timestamp", "unit": "second"}},
                },
                "n": {"$sum": 1},
            }
        },
    ]
    services: dict[str, int] = {}
    cursor = await collection.aggregate(pipeline)
    async for group in cursor:
        key = group["_id"]
        service = key["service"]
        partition = services.get(service)
        if partition is None:
            partition = services[service] = partition_for(service, partition_count)
        if partition not in wanted:
            continue
        window = out.windows[partition].setdefault(service, ServiceWindow())
        window.add(int(key["second"].timestamp()), LEVELS.index(key["level"]), int(group["n"]))
        out.events += int(group["n"])
    for partition in wanted:
        names = list(out.windows[partition])
        if not names:
            continue
        for service in names:
            await _samples(collection, out.windows[partition][service], service, since)
        overlap_from = committed_at[partition] - OVERLAP_MARGIN
        skip = collection.find(
            {"service": {"$in": names}, "received_at": {"$gte": overlap_from}},
            projection={"_id": 1},
            limit=MAX_SKIP_IDS,
        )
        out.skip_ids[partition] = {doc["_id"] async for doc in skip}
    return out


async def _samples(
    collection: AsyncCollection[dict[str, Any]],
    window: ServiceWindow,
    service: str,
    since: datetime,
) -> None:
    """Recent warning-and-above messages, for the "top errors" of a notification."""
    docs = collection.find(
        {"service": service, "level": {"$in": list(LEVELS[2:])}, "timestamp": {"$gte": since}},
        projection={"timestamp": 1, "level": 1, "message": 1, "trace_id": 1, "span_id": 1},
        sort=[("timestamp", -1)],
        limit=SAMPLES_PER_SERVICE,
    )
    recent = [doc async for doc in docs]
    for doc in reversed(recent):
        window.sample(
            int(doc["timestamp"].timestamp()),
            LEVELS.index(doc["level"]),
            doc["message"],
            doc.get("trace_id"),
            doc.get("span_id"),
        )
