"""The check that the totals collections equal the events they count, for the writer's and
the backfill's integration tests."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.read_concern import ReadConcern

from logriver_common.documents import ERROR_LEVELS
from logriver_common.indexes import ALL, ERRORS, rollup_collection_names

Key = tuple[Any, ...]  # (hour or day, service, level)


async def assert_totals_match(
    db: AsyncDatabase[dict[str, Any]], events: Counter[Key], *, daily: bool
) -> None:
    """The hourly (or daily) totals per level, per service and per service's errors, shards
    added up, equal ``events`` (counts per hour or day, service and level) summed over
    services, levels or error levels; each total's parts add up to its ``n``."""
    want: Counter[Key] = Counter()
    for (t, service, level), n in events.items():
        want[(t, ALL, level)] += n
        want[(t, service, ALL)] += n
        if level in ERROR_LEVELS:
            want[(t, service, ERRORS)] += n
    names = rollup_collection_names("logs")
    totals = db.get_collection(
        names.daily_totals if daily else names.totals, read_concern=ReadConcern("majority")
    )
    got: Counter[Key] = Counter()
    async for doc in totals.find({}):
        got[(doc["t"], doc["service"], doc["level"])] += doc["n"]
        for part in ("h", "hh") if daily else ("m", "q"):
            assert sum(doc[part].values()) == doc["n"], doc
    assert +got == want
