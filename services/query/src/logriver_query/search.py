"""Listing with cursor pagination, single-event lookup and trace lookup."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import ExecutionTimeout

from logriver_common.documents import EVENT_VIEW
from logriver_query import word_search
from logriver_query.cursor import Position, from_ms, to_ms
from logriver_query.filters import LogFilter, Order, TimeRange
from logriver_query.reads import Collection


@dataclass(frozen=True, slots=True)
class Page:
    events: list[dict[str, Any]]  # as the API shows them (EVENT_VIEW)
    next_position: Position | None


def _after(last: dict[str, Any], order: Order, flt: LogFilter, window: TimeRange) -> Position:
    """The cursor that continues after ``last``, an event as the API shows it."""
    at = to_ms(datetime.fromisoformat(last["timestamp"]))
    return Position(at, last["id"], order, flt.fingerprint(), window)


async def find_page(
    collection: Collection,
    flt: LogFilter,
    *,
    order: Order,
    limit: int,
    position: Position | None,
    max_time_ms: int,
    text_budget_ms: int = 800,
) -> Page:
    # A cursor pins the window it was issued with, so "since=15m" does not slide.
    window = position.window if position is not None else flt.window
    flt = await word_search.resolve(collection, flt, window, max_time_ms=max_time_ms)
    query = flt.to_mongo(window)
    if position is not None:
        # Tighten the plain timestamp bound so the index scan starts at the cursor.
        at = from_ms(position.timestamp_ms)
        query["timestamp"]["$lte" if order == "desc" else "$gte"] = at
        query.update(position.after())
    direction = DESCENDING if order == "desc" else ASCENDING
    # Substrings, and words the template dictionary cannot answer: time slices.
    if flt.q is not None and flt.templates is None:
        return await _sliced_page(
            collection,
            flt,
            query,
            window,
            order=order,
            limit=limit,
            budget_ms=text_budget_ms,
            max_time_ms=max_time_ms,
        )
    # One extra document tells whether another page exists without an empty last page.
    events = await collection.find(
        query,
        EVENT_VIEW,
        sort=[("timestamp", direction), ("_id", direction)],
        limit=limit + 1,
        max_time_ms=max_time_ms,
    ).to_list()
    if len(events) <= limit:
        return Page(events, None)
    events = events[:limit]
    return Page(events, _after(events[-1], order, flt, window))


async def find_event(
    collection: Collection, event_id: str, *, max_time_ms: int
) -> dict[str, Any] | None:
    return await collection.find_one({"_id": event_id}, EVENT_VIEW, max_time_ms=max_time_ms)


async def find_trace(
    collection: Collection, trace_id: str, *, cap: int, max_time_ms: int
) -> tuple[list[dict[str, Any]], bool]:
    """A trace's logs oldest first, and whether the cap cut it short."""
    events = await collection.find(
        {"trace_id": trace_id},
        EVENT_VIEW,
        sort=[("timestamp", ASCENDING), ("_id", ASCENDING)],
        limit=cap + 1,
        max_time_ms=max_time_ms,
    ).to_list()
    return events[:cap], len(events) > cap


FIRST_SLICE_MS = 15 * 60 * 1000


async def _sliced_page(
    collection: Collection,
    flt: LogFilter,
    query: dict[str, Any],
    window: TimeRange,
    *,
    order: Order,
    limit: int,
    budget_ms: int,
    max_time_ms: int,
) -> Page:
    """A substring search, one time slice at a time from the newest (oldest for ``asc``) end.

    A regex cannot use an index, so one query over a day would read the whole
    day before answering when matches are rare. Slices (15 min, doubling while
    they find too little) stop as soon as the page is full, and when the time
    budget runs out the page is answered as it is, with a cursor that resumes
    at the first unread slice (id ``""`` marks a slice edge, see cursor.py).
    """
    bound = query["timestamp"]
    low, high = to_ms(bound.get("$gte", window.since)), to_ms(bound.get("$lt", window.until))
    if "$lte" in bound:
        high = min(high, to_ms(bound["$lte"]) + 1)
    deadline = time.monotonic() + budget_ms / 1000
    direction = DESCENDING if order == "desc" else ASCENDING
    events: list[dict[str, Any]] = []
    span = FIRST_SLICE_MS
    while low < high:
        start, end = (
            (max(low, high - span), high) if order == "desc" else (low, min(high, low + span))
        )
        remaining = int((deadline - time.monotonic()) * 1000)
        first = span == FIRST_SLICE_MS
        if remaining < 10 and not first:
            return _edge_page(events, flt, window, order, high if order == "desc" else low)
        # The first slice always gets the full maxTimeMS, so every page makes progress.
        remaining = max_time_ms if first else min(remaining, max_time_ms)
        sliced = {**query, "timestamp": {"$gte": from_ms(start), "$lt": from_ms(end)}}
        try:
            found = await collection.find(
                sliced,
                EVENT_VIEW,
                sort=[("timestamp", direction), ("_id", direction)],
                limit=limit + 1 - len(events),
                max_time_ms=remaining,
            ).to_list()
        except ExecutionTimeout:
            if first:
                raise
            return _edge_page(events, flt, window, order, high if order == "desc" else low)
        events.extend(found)
        if len(events) > limit:
            events = events[:limit]
            return Page(events, _after(events[-1], order, flt, window))
        if order == "desc":
            high = start
        else:
            low = end
        span *= 2
    return Page(events, None)


def _edge_page(
    events: list[dict[str, Any]], flt: LogFilter, window: TimeRange, order: Order, edge: int
) -> Page:
    """The page found so far and a cursor at the first unread millisecond (``edge``).

    With id ``""`` the cursor's condition (see ``Position.after``) means "timestamp
    before ``edge``" for ``desc`` and "timestamp from ``edge`` on" for ``asc``.
    """
    return Page(events, Position(edge, "", order, flt.fingerprint(), window))
