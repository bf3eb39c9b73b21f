"""Top messages: a window's most frequent templates, with their services and last event.

The writer keeps one template document per day, service, level and template
(``logs_template_rollups_daily``: ``n`` and ``last`` for the day, ``h.<hour>`` and
``l.<hour>`` for each hour of it); writers before 2026-11-27 kept one per hour
(``logs_template_rollups``), read as well until their TTL removes them. Each event is
counted in exactly one of the two.

* **Whole hours** come from those documents: a whole day's ``n`` and ``last``, and the
  hours in the window of a day the window cuts.
* **An hour the window cuts** is counted whichever way reads fewer events (``cut_hours``):
  its events inside the window, grouped by template hash (``th``); or the whole hour from
  the rollups **less** its events outside the window. Time after now holds no events (a
  clock-skewed one is still subtracted), so the hour a "last 24 hours" window ends in
  costs no event read at all: what lies outside the window there is the future.
* Subtracting needs the rollups and the events at one point in time, so every read runs
  in one aggregate command at read concern ``snapshot``. Counts are kept per template and
  service until the events outside are taken off: a service whose count in the window is
  not positive is not among the template's services.
* A template's last event comes from the rollups' ``last``/``l.<hour>``. Where that lies
  after the window (in the part of the hour that was subtracted), the template's newest
  event in the window is looked up (one index seek on ``th_timestamp_id``).
* Events stored before templates existed (no ``th``) are in no rollup: the edge reads
  group them by their message's first 200 characters, which names them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import OperationFailure
from pymongo.read_concern import ReadConcern

from logriver_common.documents import ERROR_LEVELS
from logriver_common.indexes import rollup_collection_names
from logriver_query import word_search
from logriver_query.aggregations import iso
from logriver_query.cursor import from_ms, to_ms
from logriver_query.filters import LogFilter, TimeRange
from logriver_query.reads import Collection
from logriver_query.rollup_counts import DAY_MS, HOUR_MS, Read, answerable, run_reads

# Snapshot reads the server cannot serve (SnapshotTooOld; SnapshotUnavailable, e.g. a
# collection created after the snapshot): counted again without subtracting.
_SNAPSHOT_UNAVAILABLE = {239, 246}
Group = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CutHour:
    """An hour the window cuts: its start (ms), the part inside the window, and whether it
    is counted as the rollups' whole hour less its events outside the window."""

    start: int
    inside: tuple[int, int]
    complement: bool

    @property
    def outside(self) -> list[tuple[int, int]]:
        parts = [(self.start, self.inside[0]), (self.inside[1], self.start + HOUR_MS)]
        return [(low, high) for low, high in parts if low < high]


def cut_hours(since: int, until: int, now: int) -> list[CutHour]:
    """The hours the window cuts around its whole hours (at most two), each counted the
    way that reads fewer events; the time after ``now`` is taken to hold none."""

    def span(low: int, high: int) -> int:
        return max(0, min(high, now) - low)

    first, last = -(-since // HOUR_MS) * HOUR_MS, until - until % HOUR_MS
    cuts = []
    for start, inside in ((first - HOUR_MS, (since, first)), (last, (last, until))):
        if inside[0] < inside[1]:
            outside = span(start, inside[0]) + span(inside[1], start + HOUR_MS)
            cuts.append(CutHour(start, inside, complement=outside < span(*inside)))
    return cuts


async def top_messages(
    collection: Collection,
    flt: LogFilter,
    *,
    limit: int,
    max_time_ms: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The most frequent templates of the window, most frequent first."""
    levels = list(flt.levels) or list(ERROR_LEVELS)
    flt = replace(flt, levels=tuple(levels))
    since, until = to_ms(flt.window.since), to_ms(flt.window.until)
    cuts: list[CutHour] = []
    if answerable(flt) and -(-since // HOUR_MS) * HOUR_MS <= until - until % HOUR_MS:
        cuts = cut_hours(since, until, to_ms(now or datetime.now(UTC)))
    try:
        groups = await _count(collection, flt, cuts, limit=limit, max_time_ms=max_time_ms)
    except OperationFailure as exc:
        if exc.code not in _SNAPSHOT_UNAVAILABLE:
            raise
        cuts = [replace(cut, complement=False) for cut in cuts]
        groups = await _count(collection, flt, cuts, limit=limit, max_time_ms=max_time_ms)
    late = [key for key, group in groups.items() if group["last"] >= flt.window.until]
    if late:
        newest = await _newest_in_window(collection, flt, late, max_time_ms)
        for key in late:
            # None only if the events left between the two reads (TTL, or a secondary
            # further behind): the window's last instant is then the nearest known bound.
            groups[key]["last"] = newest[key] or flt.window.until - timedelta(milliseconds=1)
    ranked = sorted(groups.items(), key=_ranking)[:limit]
    await _name(collection, ranked, max_time_ms)
    return {
        "since": iso(flt.window.since),
        "until": iso(flt.window.until),
        "levels": levels,
        "messages": [
            {
                "message": group["template"],
                "count": group["count"],
                "services": sorted(group["services"]),
                "last_seen": iso(group["last"]),
            }
            for _, group in ranked
        ],
    }


async def _count(
    collection: Collection, flt: LogFilter, cuts: list[CutHour], *, limit: int, max_time_ms: int
) -> dict[Any, Group]:
    """Each template's count, services, last event and (where a rollup names it) text."""
    since, until = to_ms(flt.window.since), to_ms(flt.window.until)
    groups: dict[Any, Group] = {}

    def add(key: Any, n: int, services: list[str], last: datetime, template: str | None) -> None:
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"count": 0, "services": set(), "last": last, "template": None}
        group["count"] += n
        group["services"].update(services)
        group["last"] = max(group["last"], last)
        group["template"] = group["template"] or template

    def add_rollup(row: dict[str, Any]) -> None:
        add(row["_id"], row["n"], row["services"], row["last"], row["template"])

    def add_events(row: dict[str, Any]) -> None:
        key, named = row["_id"], row.get("named")
        template = key if isinstance(key, str) else named[0]["template"] if named else None
        add(key, row["n"], row["services"], row["last"], template)

    first, last = -(-since // HOUR_MS) * HOUR_MS, until - until % HOUR_MS
    low = min([first, *(cut.start for cut in cuts if cut.complement)])
    high = max([last, *(cut.start + HOUR_MS for cut in cuts if cut.complement)])
    if not answerable(flt) or low >= high:
        # No whole hour to read from the rollups: the events alone answer, and MongoDB
        # ranks them, keeps the top ones and names them from the dictionary.
        pipeline = [
            *_edge(flt, since, until),
            {"$sort": {"n": -1, "_id": 1}},
            {"$limit": limit},
            {
                "$lookup": {
                    "from": word_search.dictionary_of(collection).name,
                    "localField": "_id",
                    "foreignField": "_id",
                    "pipeline": [{"$project": {"_id": 0, "template": 1}}],
                    "as": "named",
                }
            },
        ]
        await run_reads(collection, [Read(collection.name, pipeline, add_events)], max_time_ms)
        return groups
    query: dict[str, Any] = {"level": {"$in": list(flt.levels)}}
    if flt.services:
        query["service"] = {"$in": list(flt.services)}
    outside = [_outside_events(flt, part) for cut in cuts if cut.complement for part in cut.outside]
    reads = [
        Read(
            rollup_collection_names(collection.name).templates,
            _rollup_rows(collection, query, low, high, outside),
            add_rollup,
        )
    ]
    for cut in cuts:
        # A subtracted hour still reads the events without a template hash inside the
        # window (an index seek that finds none once every event has one).
        edge = _edge(flt, *cut.inside, no_template=cut.complement)
        reads.append(Read(collection.name, edge, add_events))
    snapshot = ReadConcern("snapshot") if outside else None
    await run_reads(collection, reads, max_time_ms, read_concern=snapshot)
    return groups


_BY_TEMPLATE: dict[str, Any] = {
    "_id": "$th",
    "services": {"$addToSet": "$service"},
    "template": {"$max": "$template"},  # a rollup's; the events subtracted have none
}


def _rollup_rows(
    events: Collection,
    query: dict[str, Any],
    low: int,
    high: int,
    outside: list[list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """The rollups' counts per template in the whole hours [low, high), daily and hourly
    documents together, less the events of ``outside`` (``$unionWith`` stages on events)."""
    names = rollup_collection_names(events.name)
    hourly = [
        {"$match": {**query, "t": {"$gte": from_ms(low), "$lt": from_ms(high)}}},
        {"$project": {"th": 1, "service": 1, "template": 1, "w": {"n": "$n", "last": "$last"}}},
    ]
    pipeline = _daily_hours(query, low, high)
    pipeline.append({"$unionWith": {"coll": names.legacy_templates, "pipeline": hourly}})
    if not outside:
        return [
            *pipeline,
            {"$match": {"w.n": {"$gt": 0}}},
            {"$group": {**_BY_TEMPLATE, "n": {"$sum": "$w.n"}, "last": {"$max": "$w.last"}}},
        ]
    per_service = {"th": "$th", "service": "$service"}
    return [
        *pipeline,
        *({"$unionWith": {"coll": events.name, "pipeline": part}} for part in outside),
        {
            "$group": {
                "_id": per_service,
                "n": {"$sum": "$w.n"},
                "last": {"$max": "$w.last"},
                "template": {"$max": "$template"},
            }
        },
        {"$match": {"n": {"$gt": 0}}},
        {
            "$group": {
                "_id": "$_id.th",
                "services": {"$addToSet": "$_id.service"},
                "template": {"$max": "$template"},
                "n": {"$sum": "$n"},
                "last": {"$max": "$last"},
            }
        },
    ]


def _daily_hours(query: dict[str, Any], low: int, high: int) -> list[dict[str, Any]]:
    """The daily template documents' count and last event in the whole hours [low, high),
    per document (``w``): a day inside counts whole (``n``, ``last``), a day the range cuts
    as ``_day_part`` says."""
    first_day = low - low % DAY_MS
    partial_days = []
    for day in range(first_day, high, DAY_MS):
        start, end = max(day, low), min(day + DAY_MS, high)
        if (start, end) != (day, day + DAY_MS):
            part = _day_part(day, (start - day) // HOUR_MS, (end - day) // HOUR_MS)
            partial_days.append({"case": {"$eq": ["$t", from_ms(day)]}, "then": part})
    whole_day = {"n": "$n", "last": "$last"}
    counted = (
        {"$switch": {"branches": partial_days, "default": whole_day}} if partial_days else whole_day
    )
    match = {**query, "t": {"$gte": from_ms(first_day), "$lt": from_ms(high)}}
    return [
        {"$match": match},
        {"$project": {"th": 1, "service": 1, "template": 1, "w": counted}},
    ]


def _day_part(day: int, a: int, b: int) -> dict[str, Any]:
    """A daily document's count and last event in its hours [a, b), reading as few hour
    fields as it can: MongoDB finds each ``h.<hour>`` by scanning the sub-document's keys
    (the 24 h window's 3,200 documents: 20 ms of mongod for the hours, 8 without them).

    The day's ``last`` tells where its events end: a range that starts the day holds all
    of them if ``last`` is before its end; one that ends the day holds none if ``last`` is
    before its start, and otherwise holds the day's last event.
    """

    def total(hours: range) -> Any:
        return {"$sum": [f"$h.{h}" for h in hours]}

    def count(inside: range, outside: range) -> Any:
        # `n` is the sum of the day's hours: subtract the fewer.
        if len(outside) < len(inside):
            return {"$subtract": ["$n", total(outside)]}
        return total(inside)

    inside = range(a, b)
    in_hours = {"n": total(inside), "last": {"$max": [f"$l.{h}" for h in inside]}}
    if a == 0:
        ends = from_ms(day + b * HOUR_MS)
        exact = {**in_hours, "n": count(inside, range(b, 24))}
        return {"$cond": [{"$lt": ["$last", ends]}, {"n": "$n", "last": "$last"}, exact]}
    if b == 24:
        starts = from_ms(day + a * HOUR_MS)
        later = {"n": count(inside, range(0, a)), "last": "$last"}
        return {"$cond": [{"$lt": ["$last", starts]}, {"n": 0}, later]}
    return in_hours


def _outside_events(flt: LogFilter, part: tuple[int, int]) -> list[dict[str, Any]]:
    """The events with a template hash in ``part`` (outside the window), as negative counts
    per template and service, shaped like the rollup rows they are taken from."""
    match = {**flt.to_mongo(TimeRange(from_ms(part[0]), from_ms(part[1]))), "th": {"$ne": None}}
    return [
        {"$match": match},
        {"$group": {"_id": {"th": "$th", "service": "$service"}, "n": {"$sum": -1}}},
        {"$project": {"_id": 0, "th": "$_id.th", "service": "$_id.service", "w": {"n": "$n"}}},
    ]


def _edge(
    flt: LogFilter, start: int, end: int, *, no_template: bool = False
) -> list[dict[str, Any]]:
    """The events in [start, end) grouped by template hash; events stored before templates
    existed by the first 200 characters of their message (only those, if ``no_template``)."""
    match = flt.to_mongo(TimeRange(from_ms(start), from_ms(end)))
    if no_template:
        match["th"] = None
    by_key = {
        "_id": {"$ifNull": ["$th", {"$substrCP": ["$message", 0, 200]}]},
        "n": {"$sum": 1},
        "services": {"$addToSet": "$service"},
        "last": {"$max": "$timestamp"},
    }
    return [{"$match": match}, {"$group": by_key}]


async def _newest_in_window(
    collection: Collection, flt: LogFilter, keys: list[Any], max_time_ms: int
) -> dict[Any, datetime | None]:
    """Each template's newest event in the window: one seek per template on
    ``th_timestamp_id``, newest first, to the first event the filter keeps."""
    match = flt.to_mongo()

    async def newest(key: Any) -> tuple[Any, datetime | None]:
        doc = await collection.find_one(
            {**match, "th": key},
            {"_id": 0, "timestamp": 1},
            sort=[("timestamp", -1)],
            hint="th_timestamp_id",
            max_time_ms=max_time_ms,
        )
        return key, doc["timestamp"] if doc is not None else None

    return dict(await asyncio.gather(*(newest(key) for key in keys)))


async def _name(collection: Collection, ranked: list[tuple[Any, Group]], max_time_ms: int) -> None:
    """Name the ranked templates no rollup named from the template dictionary: each
    template's one document (``_id`` = th), written in the same transaction as its events."""
    missing = [key for key, group in ranked if group["template"] is None]
    if not missing:
        return
    found = word_search.dictionary_of(collection).find(
        {"_id": {"$in": missing}}, {"template": 1}, max_time_ms=max_time_ms
    )
    names = {doc["_id"]: doc["template"] async for doc in found}
    for key, group in ranked:
        if group["template"] is None:
            group["template"] = names.get(key, "")


def _ranking(item: tuple[Any, Group]) -> tuple[int, bool, Any]:
    """Most frequent first; ties in MongoDB's order of the keys (template hashes, numbers,
    before the message prefixes of events stored without one)."""
    key, group = item
    return (-group["count"], isinstance(key, str), key)
