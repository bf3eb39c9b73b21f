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
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

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
    # Whole-word search: the events of the templates that hold the words (see
    # TEMPLATE_DICTIONARY_INDEXES), one key per event instead of one per word.
    IndexModel(
        [("th", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING)],
        name="th_timestamp_id",
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
# Daily rollups: one document per (day, service, level) with the day's hours and quarters,
# so a week's histogram reads 8 documents per service and level instead of 168.
DAILY_ROLLUP_INDEXES = ROLLUP_INDEXES
# Totals, hourly and daily: the same shape with service "*" (per level, one document per
# writer's partition) or level "*" (per service). A read of either kind is an equality on
# one of the two fields within a range of `t`, which `t_service_level` serves.
TOTALS_INDEXES = ROLLUP_INDEXES
# Template counts, one document per (day, service, level, template): top messages read
# the levels asked for within a range of days.
TEMPLATE_ROLLUP_INDEXES: list[IndexModel] = [
    IndexModel([("level", ASCENDING), ("t", ASCENDING)], name="level_t"),
    IndexModel([("expire_at", ASCENDING)], name="expire_at_ttl", expireAfterSeconds=0),
]
# The template dictionary: one document per template (``_id`` = its hash ``th``) with the
# words of its text, so a whole-word query finds the templates first, then their events.
TEMPLATE_DICTIONARY_INDEXES: list[IndexModel] = [
    IndexModel([("words", ASCENDING), ("last", ASCENDING)], name="words_last"),
    IndexModel([("expire_at", ASCENDING)], name="expire_at_ttl", expireAfterSeconds=0),
]
# Replaced: `service_level_timestamp` by the `_id`-suffixed version (no blocking SORT);
# `tokens_timestamp_id` (one key per word of every event, the most expensive index by far)
# by `th_timestamp_id` and the template dictionary.
_DROPPED = ("service_level_timestamp", "tokens_timestamp_id")


# A template's dictionary entry lists at most this many words of at most this many
# characters; a template with more gets CAPPED too, so word queries always consider it.
MAX_WORDS = 64
MAX_WORD_CHARS = 40
CAPPED = "*"  # not a word ([0-9a-z_]), so no query can ask for it
_WORD = re.compile(r"[0-9a-z_]+")
_DIGIT = re.compile(r"[0-9]")


def words_of(text: str) -> list[str]:
    """The distinct lower-case words (``[0-9a-z_]+``) of ``text``, in order."""
    return list(dict.fromkeys(_WORD.findall(text.lower())))


def in_dictionary(word: str) -> bool:
    """Whether a word can be in the template dictionary.

    Words with a digit are the parts templates mask (numbers, ids, hex, UUIDs), so the
    dictionary never holds them; a query for one scans the events instead.
    """
    return len(word) <= MAX_WORD_CHARS and _DIGIT.search(word) is None


def dictionary_words(masked_text: str) -> list[str]:
    """A template's dictionary entry: the words of its (masked) text that can be looked up."""
    words = [w for w in words_of(masked_text) if in_dictionary(w)]
    if len(words) > MAX_WORDS:
        return [*words[:MAX_WORDS], CAPPED]
    return words


class RollupCollections(NamedTuple):
    counts: str
    templates: str
    # Hourly template counts, written by writers before the daily ones (2026-11-27): read
    # with them until their own TTL has removed them (never written, nor indexed, again).
    legacy_templates: str
    dictionary: str
    daily: str
    totals: str
    daily_totals: str


# In the totals collections: the value of the dimension a total is summed over, and the
# level of a service's error totals (its ERROR_LEVELS counts together). Neither a service
# name ([A-Za-z0-9._-]) nor a level can be either.
ALL = "*"
ERRORS = "!"


def rollup_collection_names(collection: str) -> RollupCollections:
    """The collections holding ``collection``'s hourly counts, daily template counts (and
    the hourly ones of older writers), templates' words, daily counts, and the hourly and
    daily totals (counts per level over all services, per service over all levels)."""
    return RollupCollections(
        f"{collection}_rollups",
        f"{collection}_template_rollups_daily",
        f"{collection}_template_rollups",
        f"{collection}_templates",
        f"{collection}_rollups_daily",
        f"{collection}_rollups_totals",
        f"{collection}_rollups_daily_totals",
    )


# The daily collection's one other document: daily counts are complete for the days from
# `since` on (the writer has counted every event of those days into them). Days before it
# are read from the hourly rollups until the writer's backfill has moved `since` back.
# "-v2": daily documents hold half-hour counts (`hh`) too. "-v3": the totals collections
# are complete from `since` on as well. A store with only an older marker gets a new one
# and the backfill rebuilds every older day's daily documents and totals.
DAILY_COVERAGE_ID = "coverage-v3"
_OLD_COVERAGE_IDS = ["coverage", "coverage-v2"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


async def ensure_daily_coverage(collection: AsyncCollection[dict[str, Any]]) -> None:
    """Create the coverage marker once: from the start of time for a store with no counts
    yet, else from tomorrow (today's earlier events were counted by hour only)."""
    names = rollup_collection_names(collection.name)
    daily = collection.database[names.daily]
    if await daily.find_one({"_id": DAILY_COVERAGE_ID}) is not None:
        return
    await daily.delete_many({"_id": {"$in": _OLD_COVERAGE_IDS}})
    if await collection.database[names.counts].find_one({}, {"_id": 1}) is None:
        since = EPOCH
    else:
        now = datetime.now(UTC)
        since = datetime(now.year, now.month, now.day, tzinfo=UTC) + DAY
    # The first writer to get here decides; the others find its marker.
    await daily.update_one(
        {"_id": DAILY_COVERAGE_ID}, {"$setOnInsert": {"since": since}}, upsert=True
    )


async def ensure_log_indexes(collection: AsyncCollection[dict[str, Any]]) -> list[str]:
    names = await collection.create_indexes(LOG_INDEXES)
    existing = await collection.index_information()
    for name in _DROPPED:
        if name in existing:
            await collection.drop_index(name)
    names_of = rollup_collection_names(collection.name)
    await collection.database[names_of.counts].create_indexes(ROLLUP_INDEXES)
    await collection.database[names_of.templates].create_indexes(TEMPLATE_ROLLUP_INDEXES)
    await collection.database[names_of.dictionary].create_indexes(TEMPLATE_DICTIONARY_INDEXES)
    await collection.database[names_of.daily].create_indexes(DAILY_ROLLUP_INDEXES)
    await collection.database[names_of.totals].create_indexes(TOTALS_INDEXES)
    await collection.database[names_of.daily_totals].create_indexes(TOTALS_INDEXES)
    await ensure_daily_coverage(collection)
    return names
