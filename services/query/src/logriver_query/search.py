"""Listing with cursor pagination, single-event lookup and trace lookup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING

from logriver_query.cursor import Position, from_ms, to_ms
from logriver_query.filters import LogFilter, Order
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
) -> Page:
    # A cursor pins the window it was issued with, so "since=15m" does not slide.
    window = position.window if position is not None else flt.window
    query = flt.to_mongo(window)
    if position is not None:
        # Tighten the plain timestamp bound so the index scan starts at the cursor.
        at = from_ms(position.timestamp_ms)
        query["timestamp"]["$lte" if order == "desc" else "$gte"] = at
        query.update(position.after())
    direction = DESCENDING if order == "desc" else ASCENDING
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
