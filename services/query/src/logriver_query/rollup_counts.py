"""Exact counts from the writer's rollups, and a bounded scan where rollups cannot answer.

Rollups (written by services/writer/.../rollups.py in the same transaction as the
events) hold one document per ``(hour, service, level)`` (``logs_rollups``: the hour's
count ``n``, quarter-hour counts ``q.<0..3>`` and per-minute counts ``m.<0..59>``) and
one per ``(day, service, level)`` (``logs_rollups_daily``: ``n``, ``h.<0..23>`` and
``hh.<0..47>``). A window is answered from them for its whole minutes: whole hours in
hour and half-hour buckets (and whole days in one bucket) from the daily documents where
those are complete (the coverage marker, see ``ensure_daily_coverage``), else from the
hourly ones; the hours cut by the window from their quarters and minutes; the partial
minutes at its two edges (at most two minutes of events) are counted over the events. So
the answer is exactly a count over the stored events, at any window up to the range limit.

A count with no service filter that is not split by service reads the **totals** (one
document per level and writer partition, service ``*``), one with no level filter (or
exactly the error levels) not split by level the per-service totals (level ``*`` or
``!``), where the coverage marker says they are complete: a 24 h chart of 20 services by
level then reads 10 daily documents, not 200.

Rollups know only service and level. A filter on host, env, trace_id, ``q`` or
``meta.*`` is answered by scanning the events, newest slice first, within a
time budget (``scan_budget_ms``): if the budget runs out the answer says
``truncated: true`` and ``complete_since`` (counts are exact from there to
``until``; older buckets are missing or partial).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.errors import ExecutionTimeout, OperationFailure
from pymongo.read_concern import ReadConcern

from logriver_common.documents import ERROR_LEVELS
from logriver_common.indexes import (
    ALL,
    DAILY_COVERAGE_ID,
    ERRORS,
    RollupCollections,
    rollup_collection_names,
)
from logriver_query.cursor import from_ms, to_ms
from logriver_query.filters import LogFilter, TimeRange
from logriver_query.reads import Collection

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
QUARTER_MS = 15 * MINUTE_MS
HALF_HOUR_MS = 30 * MINUTE_MS
# Rows per batch of the one cursor: a 7-day window's daily documents come in one.
BATCH = 5_000
DAY_MS = 24 * HOUR_MS
# How long a process trusts the coverage it read. Coverage only moves back (older) as the
# writer's backfill proceeds, so a stale value sends more hours to the hourly rollups:
# slower for a while, never wrong.
COVERAGE_TTL_S = 30.0
_coverage: dict[tuple[str, str], tuple[int, float]] = {}
# Key: (bucket start ms, service, level) → count.
Rows = dict[tuple[int, str, str], int]


def answerable(flt: LogFilter) -> bool:
    """Whether rollups alone (plus the two edge minutes) answer this filter exactly."""
    return not (flt.host or flt.env or flt.trace_id or flt.q or flt.meta)


def rollups_of(events: Collection, daily: bool = False) -> Collection:
    names = rollup_collection_names(events.name)
    return events.database.get_collection(
        names.daily if daily else names.counts,
        read_preference=events.read_preference,
        read_concern=events.read_concern,
    )


async def daily_since(events: Collection) -> int:
    """From when (ms) the daily rollups are complete; ``2**62`` when they are not yet kept."""
    key = (events.database.name, events.name)
    cached = _coverage.get(key)
    if cached is not None and time.monotonic() - cached[1] < COVERAGE_TTL_S:
        return cached[0]
    marker = await rollups_of(events, daily=True).find_one({"_id": DAILY_COVERAGE_ID})
    since = to_ms(marker["since"]) if marker is not None else 2**62
    _coverage[key] = (since, time.monotonic())
    return since


def forget_daily_coverage() -> None:
    """Read the coverage marker again on the next request (tests move it)."""
    _coverage.clear()


def _bucket(ms: int, first: int, size_ms: int) -> int:
    return first if size_ms == 0 else ms - ms % size_ms


def _totals_match(flt: LogFilter, keep: tuple[str, ...]) -> dict[str, str] | None:
    """The totals that answer this count (their match), or None: per-level totals when no
    service is asked for or kept apart, else per-service ones when no level is (or exactly
    the error levels are) and levels are not kept apart."""
    if not flt.services and "service" not in keep:
        return {"service": ALL}
    if "level" not in keep and not flt.levels:
        return {"level": ALL}
    if "level" not in keep and sorted(flt.levels) == sorted(ERROR_LEVELS):
        return {"level": ERRORS}
    return None


def _dimension_filter(flt: LogFilter) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if flt.services:
        query["service"] = {"$in": list(flt.services)}
    if flt.levels:
        query["level"] = {"$in": list(flt.levels)}
    return query


async def rollup_rows(
    events: Collection,
    flt: LogFilter,
    *,
    bucket_s: int,
    max_time_ms: int,
    keep: tuple[str, ...] = ("service", "level"),
    also: Sequence[Read] = (),
) -> Rows:
    """Exact counts per (bucket, service, level); ``bucket_s`` is a multiple of 60, or 0 for one
    bucket covering the whole window. A dimension not in ``keep`` is "" (summed over).

    Every read it needs (daily documents, hourly ones, the hours and minutes the window cuts)
    goes to MongoDB in **one** aggregate command (see :func:`run_reads`), with the caller's
    own reads (``also``)."""
    plan = await _plan(events, flt, bucket_s=bucket_s, keep=keep)
    await run_reads(plan.events, [*plan.reads, *also], max_time_ms)
    return plan.rows


async def service_counts(
    events: Collection, flt: LogFilter, *, max_time_ms: int, also: Sequence[Read] = ()
) -> dict[str, tuple[int, int]]:
    """Per service: the window's events (of ``flt``'s levels) and how many of them are at an
    error level, from **one** plan. With no level filter it reads the per-service totals of
    every level and of the error levels side by side (level ``*`` and ``!``, one read each
    for both: half the reads of two counts); with one (no endpoint passes one today), the
    per-(service, level) counts of the levels asked for. Rows of real levels (hours the
    totals do not cover yet, the edge minutes) are sorted here."""
    # Both totals in one match: each of their rows says which count it is (its level).
    both_totals = None if flt.levels else {"level": {"$in": [ALL, ERRORS]}}
    plan = await _plan(events, flt, bucket_s=0, keep=("service", "level"), totals=both_totals)
    await run_reads(plan.events, [*plan.reads, *also], max_time_ms)
    counts: dict[str, list[int]] = {}
    for (_, service, level), n in plan.rows.items():
        both = counts.setdefault(service, [0, 0])
        if level != ERRORS:  # every level ("*") or a real one
            both[0] += n
        if level == ERRORS or level in ERROR_LEVELS:
            both[1] += n
    return {service: (count, errors) for service, (count, errors) in counts.items()}


async def _plan(
    events: Collection,
    flt: LogFilter,
    *,
    bucket_s: int,
    keep: tuple[str, ...],
    totals: dict[str, Any] | None = None,
) -> _Plan:
    """The reads that count ``flt``'s window (see :func:`rollup_rows`); ``totals``, when
    given, is the match of the totals to read instead of the ones the filter picks."""
    since, until = to_ms(flt.window.since), to_ms(flt.window.until)
    size = bucket_s * 1000
    plan = _Plan(
        events,
        flt,
        keep,
        first=since - since % size if size else since,
        size=size,
        covered_since=await daily_since(events),
        totals=totals if totals is not None else _totals_match(flt, keep),
    )
    m0 = -(-since // MINUTE_MS) * MINUTE_MS  # first whole minute
    m1 = until - until % MINUTE_MS  # end of the last whole minute
    if m0 >= m1:
        plan.scan_edge(since, until)
        return plan
    h0 = -(-m0 // HOUR_MS) * HOUR_MS
    h1 = m1 - m1 % HOUR_MS
    if h0 < h1:
        by_hours = [(h0, h1)]  # what the hourly documents still have to answer
        if size % HALF_HOUR_MS == 0:
            # Days the daily rollups cover: one document per day instead of 24.
            covered = max(h0, plan.covered_since)
            d0, d1 = -(-covered // DAY_MS) * DAY_MS, h1 - h1 % DAY_MS  # the whole days
            if size == 0 and d0 < d1:
                # One bucket: whole days add their `n` (a 7-day summary reads 6 of them),
                # the days cut by the window their hours.
                plan.whole_days(d0, d1)
                for start, end in ((covered, d0), (d1, h1)):
                    if start < end:
                        plan.day_parts(start, end)
                by_hours = [(h0, covered)]
            elif covered < h1:
                # The days' `h` or `hh` counts of the window's hours, for each bucket.
                plan.day_parts(covered, h1)
                by_hours = [(h0, covered)]
        for start, end in by_hours:
            if start < end:
                plan.whole_hours(start, end)
        edge_hours = [h for h in (h0 - HOUR_MS, h1) if max(h, m0) < min(h + HOUR_MS, m1)]
    else:
        edge_hours = list(range(m0 - m0 % HOUR_MS, m1, HOUR_MS))
    for hour in edge_hours:
        plan.cut_hour(hour, m0, m1)
    if since < m0:
        plan.scan_edge(since, m0)
    if m1 < until:
        plan.scan_edge(m1, until)
    return plan


@dataclass
class Read:
    """One read of a count: a pipeline on one collection, what to do with each of its rows,
    and what to do once they have all come."""

    collection: str
    pipeline: list[dict[str, Any]]
    absorb: Callable[[dict[str, Any]], None]
    finish: Callable[[], None] = lambda: None


@dataclass
class _Plan:
    """The reads a count needs, and the rows they add up to."""

    events: Collection
    flt: LogFilter
    keep: tuple[str, ...]
    first: int  # the first bucket's start (ms)
    size: int  # bucket size (ms), 0 for one bucket
    covered_since: int  # daily documents and totals are complete from here (ms)
    totals: dict[str, Any] | None  # the match of the totals that answer it, if any
    rows: Rows = field(default_factory=lambda: defaultdict(int))
    reads: list[Read] = field(default_factory=list)

    def _source(self, start: int, *, daily: bool) -> tuple[str, dict[str, Any]]:
        """The collection a read from ``start`` on goes to, and its match on the dimensions:
        totals where they answer it and are complete, else the per-service-and-level counts."""
        names = self._names()
        match = _dimension_filter(self.flt)
        if self.totals is not None and start >= self.covered_since:
            return (names.daily_totals if daily else names.totals), {**match, **self.totals}
        return (names.daily if daily else names.counts), match

    def _bucket(self, ms: int) -> int:
        return _bucket(ms, self.first, self.size)

    @property
    def _dimensions(self) -> dict[str, str]:
        return {
            "s": "$service" if "service" in self.keep else "",
            "l": "$level" if "level" in self.keep else "",
        }

    def _names(self) -> RollupCollections:
        return rollup_collection_names(self.events.name)

    def whole_days(self, start: int, end: int) -> None:
        """Whole days ``[start, end)`` (day starts) into the one bucket: their `n`."""
        collection, match = self._source(start, daily=True)
        match["t"] = _between(start, end)
        group = {"_id": {"s": self._dimensions["s"], "l": self._dimensions["l"]}}

        def absorb(row: dict[str, Any]) -> None:
            self.rows[(self.first, row["_id"]["s"], row["_id"]["l"])] += row["a0"]

        pipeline = [{"$match": match}, {"$group": {**group, "a0": {"$sum": "$n"}}}]
        self.reads.append(Read(collection, pipeline, absorb))

    def day_parts(self, start: int, end: int) -> None:
        """The daily documents' counts of the whole hours in ``[start, end)``, per bucket.

        One bucket and buckets of whole hours read each day's ``h.<hour>``, 30-minute ones
        its ``hh.<half hour>``. The documents come back as they are and are summed here: MongoDB's
        ``$group`` costs about a microsecond per number summed (48 ``$sum`` over the 200
        documents of a 24 h histogram: 6.0 ms of mongod), a plain read of them 0.9 ms.
        """
        part, part_ms = ("h", HOUR_MS) if self.size % HOUR_MS == 0 else ("hh", HALF_HOUR_MS)
        collection, match = self._source(start, daily=True)
        match["t"] = _between(start - start % DAY_MS, end)
        # `t` as a number: a tz-aware datetime costs more to decode than the day's sum.
        projection = {
            "_id": 0,
            "t": {"$toLong": "$t"},
            "p": f"${part}",
            **{name: 1 for name in self.keep},
        }

        # First the parts as stored, per (day, service, level); then into buckets.
        sums: dict[tuple[int, str, str], dict[str, int]] = {}

        def absorb(doc: dict[str, Any]) -> None:
            key = (doc["t"], doc.get("service", ""), doc.get("level", ""))
            parts = sums.get(key)
            if parts is None:
                sums[key] = dict(doc.get("p", ()))
                return
            for k, n in doc.get("p", {}).items():
                parts[k] = parts.get(k, 0) + n

        def finish() -> None:
            # Per day: the keys of its parts inside the window, with their buckets. Looking
            # those up (not walking every stored part) skips the parts outside the window.
            slots: dict[int, list[tuple[str, int]]] = {}
            rows = self.rows
            for (day, service, level), parts in sums.items():
                if (slot := slots.get(day)) is None:
                    slot = slots[day] = [
                        (str(k), self._bucket(day + k * part_ms))
                        for k in range(DAY_MS // part_ms)
                        if start <= day + k * part_ms < end
                    ]
                for k, bucket in slot:
                    if n := parts.get(k):
                        rows[(bucket, service, level)] += n

        pipeline = [{"$match": match}, {"$project": projection}]
        self.reads.append(Read(collection, pipeline, absorb, finish))

    def whole_hours(self, start: int, end: int) -> None:
        """Whole hours from the hourly documents: the coarsest count that fits the bucket,
        `n` for the hour, `q` per quarter hour, else `m` per minute."""
        if self.totals is not None and start < self.covered_since < end:
            # Totals from the coverage on, the per-service-and-level counts before it.
            self.whole_hours(start, self.covered_since)
            self.whole_hours(self.covered_since, end)
            return
        if self.size == 0 or self.size % HOUR_MS == 0:
            part, part_ms = "n", HOUR_MS
        elif self.size % QUARTER_MS == 0:
            part, part_ms = "q", QUARTER_MS
        else:
            part, part_ms = "m", MINUTE_MS
        parts = HOUR_MS // part_ms
        sums = (
            {"a0": {"$sum": "$n"}}
            if part == "n"
            else {f"a{k}": {"$sum": f"${part}.{k}"} for k in range(parts)}
        )
        collection, match = self._source(start, daily=False)
        match["t"] = _between(start, end)
        key = {"t": _hour_key(part, start, self.size), **self._dimensions}

        def absorb(row: dict[str, Any]) -> None:
            t = row["_id"]["t"]
            hour = t if isinstance(t, int) else to_ms(t)
            for k in range(parts):
                if n := row[f"a{k}"]:
                    # For `n` over several hours per bucket, `hour` is the bucket.
                    bucket = self._bucket(hour + k * part_ms)
                    self.rows[(bucket, row["_id"]["s"], row["_id"]["l"])] += n

        pipeline = [{"$match": match}, {"$group": {"_id": key, **sums}}]
        self.reads.append(Read(collection, pipeline, absorb))

    def cut_hour(self, hour: int, m0: int, m1: int) -> None:
        """An hour cut by the window: its quarters that lie inside the window (and in one
        bucket) and the minutes of the quarters cut by it: at most 31 numbers per row."""
        fields: list[tuple[str, int]] = []
        for quarter in range(4):
            start, end = hour + quarter * QUARTER_MS, hour + (quarter + 1) * QUARTER_MS
            bucket = self._bucket(start)
            if m0 <= start and end <= m1 and bucket == self._bucket(end - MINUTE_MS):
                fields.append((f"q.{quarter}", bucket))
                continue
            for k in range(quarter * 15, quarter * 15 + 15):
                at = hour + k * MINUTE_MS
                if m0 <= at < m1:
                    fields.append((f"m.{k}", self._bucket(at)))
        sums = {f"a{j}": {"$sum": f"${path}"} for j, (path, _) in enumerate(fields)}
        collection, match = self._source(hour, daily=False)
        match["t"] = from_ms(hour)

        def absorb(row: dict[str, Any]) -> None:
            for j, (_, bucket) in enumerate(fields):
                if n := row[f"a{j}"]:
                    self.rows[(bucket, row["_id"]["s"], row["_id"]["l"])] += n

        pipeline = [{"$match": match}, {"$group": {"_id": self._dimensions, **sums}}]
        self.reads.append(Read(collection, pipeline, absorb))

    def scan_edge(self, start: int, end: int) -> None:
        """Count the events of a sub-minute edge (one bucket when the size is ≥ 1 min)."""
        match = self.flt.to_mongo(TimeRange(from_ms(start), from_ms(end)))
        bucket = self._bucket(start)

        def absorb(row: dict[str, Any]) -> None:
            self.rows[(bucket, row["_id"]["s"], row["_id"]["l"])] += row["n"]

        group = {"_id": self._dimensions, "n": {"$sum": 1}}
        self.reads.append(Read(self.events.name, [{"$match": match}, {"$group": group}], absorb))


async def run_reads(
    events: Collection,
    reads: list[Read],
    max_time_ms: int,
    *,
    read_concern: ReadConcern | None = None,
) -> None:
    """Several reads in one aggregate command: the first on its collection, each other in a
    ``$unionWith`` stage, every row tagged with its read's index; each read absorbs its own
    rows, then finishes. They read as ``events`` does (preference, concern), or at
    ``read_concern`` (``snapshot``: every read at one point in time).

    One command instead of up to six cuts a round trip's cost from the service and mongod
    for each (the 24 h histogram: five reads, one command).
    """
    stages: list[dict[str, Any]] = []
    for i, read in enumerate(reads):
        pipeline = [*read.pipeline, {"$set": {"_r": i}}]
        stages += (
            pipeline
            if i == 0
            else [{"$unionWith": {"coll": read.collection, "pipeline": pipeline}}]
        )
    first = events.database.get_collection(
        reads[0].collection,
        read_preference=events.read_preference,
        read_concern=read_concern or events.read_concern,
    )
    cursor = await first.aggregate(
        stages, maxTimeMS=max_time_ms, batchSize=BATCH, allowDiskUse=False
    )
    async for row in cursor:
        reads[row["_r"]].absorb(row)
    for read in reads:
        read.finish()


def _between(start: int, end: int) -> dict[str, datetime]:
    return {"$gte": from_ms(start), "$lt": from_ms(end)}


def _hour_key(part_name: str, low: int, size: int) -> Any:
    """What a rollup's hour is grouped by: itself, or, when only whole hours are read (`n`),
    the bucket it falls in (fewer rows: a 7-day histogram of 3 h buckets returns a third)."""
    if part_name != "n" or size == HOUR_MS:
        return "$t"
    if size == 0:
        return {"$literal": low}  # one bucket for the whole window
    t = {"$toLong": "$t"}
    # Floor division (also before 1970), as Python's `ms - ms % size` does.
    return {"$toLong": {"$multiply": [{"$floor": {"$divide": [t, size]}}, size]}}


@dataclass
class ScanResult:
    """Counts per (bucket start ms, group) from a bounded scan, and how far back they are exact."""

    counts: dict[int, dict[str, int]] = field(default_factory=dict)
    truncated: bool = False
    complete_since: datetime | None = None


async def bounded_scan(
    events: Collection,
    flt: LogFilter,
    *,
    bucket_s: int,
    group_by: str,
    budget_ms: int,
    slices: int = 12,
) -> ScanResult:
    """Histogram counts over the events, newest slice first, within ``budget_ms`` in total."""
    size = bucket_s * 1000
    since, until = to_ms(flt.window.since), to_ms(flt.window.until)
    step = max(size, -(-(until - since) // slices // size) * size)
    deadline = time.monotonic() + budget_ms / 1000
    result = ScanResult(complete_since=flt.window.until)
    ts_ms = {"$toLong": "$timestamp"}
    key: dict[str, Any] = {"t": {"$subtract": [ts_ms, {"$mod": [ts_ms, size]}]}}
    if group_by != "none":
        key["k"] = f"${group_by}"
    end = until
    while end > since:
        # Slice edges on bucket starts, so `complete_since` never splits a bucket.
        start = end - step
        start = max(since, start - start % size)
        remaining = int((deadline - time.monotonic()) * 1000)
        if remaining < 10:
            result.truncated = True
            break
        pipeline: list[dict[str, Any]] = [
            {"$match": flt.to_mongo(TimeRange(from_ms(start), from_ms(end)))},
            {"$group": {"_id": key, "n": {"$sum": 1}}},
        ]
        try:
            cursor = await events.aggregate(pipeline, maxTimeMS=remaining, allowDiskUse=False)
            rows = await cursor.to_list()
        except ExecutionTimeout:
            result.truncated = True
            break
        except OperationFailure as exc:
            if exc.code != 50:
                raise
            result.truncated = True
            break
        for row in rows:
            bucket = result.counts.setdefault(row["_id"]["t"], {})
            group = str(row["_id"].get("k", "all"))
            bucket[group] = bucket.get(group, 0) + row["n"]
        result.complete_since = from_ms(start)
        end = start
    return result
