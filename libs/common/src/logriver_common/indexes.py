"""The ``logs`` collection's indexes, each with the query it serves.

The writer creates them at start-up (idempotently: ``create_indexes`` with the
same spec is a no-op); the query service's benchmarks check its plans use them.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

LOG_INDEXES: list[IndexModel] = [
    # Time-range listing and cursor pagination on (timestamp, _id), newest first.
    IndexModel([("timestamp", DESCENDING), ("_id", DESCENDING)], name="timestamp_id"),
    # Filtered listing: service (+ level) within a time range; also per-service counts.
    IndexModel(
        [("service", ASCENDING), ("level", ASCENDING), ("timestamp", DESCENDING)],
        name="service_level_timestamp",
    ),
    # Trace lookup: all logs of one trace; most events have none, so sparse.
    IndexModel([("trace_id", ASCENDING)], name="trace_id", sparse=True),
    # Retention: MongoDB's TTL monitor deletes a document once `expire_at` has passed.
    IndexModel([("expire_at", ASCENDING)], name="expire_at_ttl", expireAfterSeconds=0),
]


async def ensure_log_indexes(collection: AsyncCollection[dict[str, Any]]) -> list[str]:
    return await collection.create_indexes(LOG_INDEXES)
