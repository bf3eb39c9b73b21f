"""Listing with cursor pagination, single-event lookup and trace lookup."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import ExecutionTimeout

from logriver_query import word_search
from logriver_query.cursor import Position, from_ms, to_ms
from logriver_query.filters import LogFilter, Order, TimeRange
from logriver_query.reads import Collection

# `expire_at` is storage bookkeeping, not part of the event.
PROJECTION = {"expire_at": 0}


@dataclass(frozen=True, slots=True)
class Page:
    documents: list[dict[str, Any]]
    next_position: Position | None


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
    documents = await collection.find(
        query,
        PROJECTION,
        sort=[("timestamp", direction), ("_id", direction)],
        limit=limit + 1,
        max_time_ms=max_time_ms,
    ).to_list()
    if len(documents) <= limit:
        return Page(documents, None)
    documents = documents[:limit]
    last = documents[-1]
    return Page(
        documents,
        Position(to_ms(last["timestamp"]), last["_id"], order, flt.fingerprint(), window),
    )


async def find_event(
    collection: Collection, event_id: str, *, max_time_ms: int
) -> dict[str, Any] | None:
    return await collection.find_one({"_id": event_id}, PROJECTION, max_time_ms=max_time_ms)


async def find_trace(
    collection: Collection, trace_id: str, *, cap: int, max_time_ms: int
) -> tuple[list[dict[str, Any]], bool]:
    """A trace's logs oldest first, and whether the cap cut it short."""
    documents = await collection.find(
        {"trace_id": trace_id},
        PROJECTION,
        sort=[("timestamp", ASCENDING), ("_id", ASCENDING)],
        limit=cap + 1,
        max_time_ms=max_time_ms,
    ).to_list()
    return documents[:cap], len(documents) > cap


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
    documents: list[dict[str, Any]] = []
    span = FIRST_SLICE_MS
    while low < high:
        start, end = (
            (max(low, high - span), high) if order == "desc" else (low, min(high, low + span))
        )
        remaining = int((deadline - time.monotonic()) * 1000)
        first = span == FIRST_SLICE_MS
        if remaining < 10 and not first:
            return _edge_page(documents, flt, window, order, high if order == "desc" else low)
        # The first slice always gets the full maxTimeMS, so every page makes progress.
        remaining = max_time_ms if first else min(remaining, max_time_ms)
        sliced = {**query, "timestamp": {"$gte": from_ms(start), "$lt": from_ms(end)}}
        try:
            found = await collection.find(
                sliced,
                PROJECTION,
                sort=[("timestamp", direction), ("_id", direction)],
                limit=limit + 1 - len(documents),
                max_time_ms=remaining,
            ).to_list()
        except ExecutionTimeout:
            if first:
                raise
            return _edge_page(documents, flt, window, order, high if order == "desc" else low)
        documents.extend(found)
        if len(documents) > limit:
            documents = documents[:limit]
            last = documents[-1]
            position = Position(
                to_ms(last["timestamp"]), last["_id"], order, flt.fingerprint(), window
            )
            return Page(documents, position)
        if order == "desc":
            high = start
        else:
            low = end
        span *= 2
    return Page(documents, None)


def _edge_page(
    documents: list[dict[str, Any]], flt: LogFilter, window: TimeRange, order: Order, edge: int
) -> Page:
    """The page found so far and a cursor at the first unread millisecond (``edge``).

    With id ``""`` the cursor's condition (see ``Position.after``) means "timestamp
    before ``edge``" for ``desc`` and "timestamp from ``edge`` on" for ``asc``.
    """
    return Page(documents, Position(edge, "", order, flt.fingerprint(), window))
