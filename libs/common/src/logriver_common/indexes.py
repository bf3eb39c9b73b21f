"""The ``logs`` collection's indexes (and its rollups'), each with the query it serves.

The writer creates them at start-up (idempotently: ``create_indexes`` with the
same spec is a no-op); the query service's benchmark checks its plans use them.

List indexes are ordered equality → sort → range: the equality fields first,
then ``(timestamp, _id)``, which is both the sort and the range, so a page is
read in index order and stops after ``limit + 1`` keys (no blocking SORT; with
``$in`` on an equality field MongoDB merges the per-value runs, SORT_MERGE).
"""

from __future__ import annotations

import re
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

LOG_INDEXES: list[IndexModel] = [
    # Time-range listing and cursor pagination on (timestamp, _id), newest first.
    IndexModel([("timestamp", DESCENDING), ("_id", DESCENDING)], name="timestamp_id"),
    # Filtered listing: service (+ level) within a time range, sorted by (timestamp, _id).
    IndexModel(
        [
            ("service", ASCENDING),
            ("level", ASCENDING),
            ("timestamp", DESCENDING),
            ("_id", DESCENDING),
        ],
        name="service_level_timestamp_id",
    ),
    IndexModel(
        [("service", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING)],
        name="service_timestamp_id",
    ),
    IndexModel(
        [("level", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING)],
        name="level_timestamp_id",
    ),
    # Whole-word text search: one key per distinct word (multikey), then the sort.
    IndexModel(
        [("tokens", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING)],
        name="tokens_timestamp_id",
    ),
    # Trace lookup: all logs of one trace; most events have none, so sparse.
    IndexModel([("trace_id", ASCENDING)], name="trace_id", sparse=True),
    # Retention: MongoDB's TTL monitor deletes a document once `expire_at` has passed.
    IndexModel([("expire_at", ASCENDING)], name="expire_at_ttl", expireAfterSeconds=0),
]

# Rollups: one document per (hour, service, level), and per (hour, service, level, template).
ROLLUP_INDEXES: list[IndexModel] = [
    IndexModel(
        [("t", ASCENDING), ("service", ASCENDING), ("level", ASCENDING)], name="t_service_level"
    ),
    IndexModel([("expire_at", ASCENDING)], name="expire_at_ttl", expireAfterSeconds=0),
]
TEMPLATE_ROLLUP_INDEXES: list[IndexModel] = [
    IndexModel([("level", ASCENDING), ("t", ASCENDING)], name="level_t"),
    # A template's text for counts that came from scanning events (which store only `th`).
    IndexModel([("th", ASCENDING), ("t", ASCENDING)], name="th_t"),
    IndexModel([("expire_at", ASCENDING)], name="expire_at_ttl", expireAfterSeconds=0),
]
# Replaced by the `_id`-suffixed versions above (the suffix removes the blocking SORT).
_DROPPED = ("service_level_timestamp",)


MAX_TOKENS = 64
MAX_TOKEN_CHARS = 40
_TOKEN = re.compile(r"[0-9a-z_]+")


def tokens_of(message: str) -> list[str]:
    """The distinct lower-case words (``[0-9a-z_]+``) of a message, as the ``tokens`` index
    holds them: the writer stores them, a whole-word query looks them up."""
    seen: dict[str, None] = {}
    for token in _TOKEN.findall(message[:8192].lower()):
        if len(token) <= MAX_TOKEN_CHARS:
            seen[token] = None
            if len(seen) >= MAX_TOKENS:
                break
    return list(seen)


def rollup_collection_names(collection: str) -> tuple[str, str]:
    """The collections holding ``collection``'s counts and its template counts."""
    return f"{collection}_rollups", f"{collection}_template_rollups"


async def ensure_log_indexes(collection: AsyncCollection[dict[str, Any]]) -> list[str]:
    names = await collection.create_indexes(LOG_INDEXES)
    existing = await collection.index_information()
    for name in _DROPPED:
        if name in existing:
            await collection.drop_index(name)
    counts, templates = rollup_collection_names(collection.name)
    await collection.database[counts].create_indexes(ROLLUP_INDEXES)
    await collection.database[templates].create_indexes(TEMPLATE_ROLLUP_INDEXES)
    return names
