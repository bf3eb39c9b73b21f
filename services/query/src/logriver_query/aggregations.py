"""Aggregations over a time window: error summary, histogram, services, top messages.

Each returns plain JSON-ready data (the cache stores it as JSON). The planner
picks the index: a bare time range uses ``timestamp_id`` (measured: hinting
``service_level_timestamp`` to make histograms index-only made MongoDB 6.0
scan every key of the index and fetch every document, 10x slower, see
docs/query.md). ``allowDiskUse`` is off and ``maxTimeMS`` bounds every one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from logriver_common.documents import LEVELS
from logriver_query.cursor import from_ms, to_ms
from logriver_query.filters import RELATIVE, LogFilter, TimeRange, bad_request, too_broad
from logriver_query.reads import Collection

ERROR_LEVELS = ["ERROR", "CRITICAL"]
GroupBy = Literal["level", "service", "none"]
# "Nice" bucket sizes for the automatic choice, in seconds.
_NICE = [1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 10800, 21600, 43200, 86400, 604800]
AUTO_TARGET_BUCKETS = 60
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _aggregate(
    collection: Collection, pipeline: list[dict[str, Any]], max_time_ms: int
) -> list[dict[str, Any]]:
    cursor = await collection.aggregate(pipeline, maxTimeMS=max_time_ms, allowDiskUse=False)
    return await cursor.to_list()


def bucket_seconds(window: TimeRange, requested: str | None, max_buckets: int) -> int:
    """The bucket size: as requested ("5m"), or the smallest nice size giving ≤ ~60 buckets."""
    size = _bucket_size(window, requested, max_buckets)
    try:
        # Buckets align to the epoch, so the first one can start before the window:
        # before 0001-01-01 that start is not a datetime.
        from_ms(to_ms(window.since) // (size * 1000) * (size * 1000))
    except OverflowError:
        raise bad_request(
            "the first bucket would start before year 1; move `since` later", "invalid_range"
        ) from None
    return size


def _bucket_size(window: TimeRange, requested: str | None, max_buckets: int) -> int:
    if requested is None or requested == "auto":
        for size in _NICE:
            if window.seconds / size <= AUTO_TARGET_BUCKETS:
                return size
        return _NICE[-1]
    match = RELATIVE.match(requested)
    if not match:
        raise bad_request("`bucket` is `auto` or a size such as 30s, 5m, 1h, 1d")
    size = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if size < 1:
        raise bad_request("`bucket` must be at least 1s")
    if window.seconds / size > max_buckets:
        raise too_broad(f"that would be more than {max_buckets} buckets; use a larger `bucket`")
    return size


async def error_summary(
    collection: Collection, flt: LogFilter, *, max_time_ms: int
) -> dict[str, Any]:
    match = flt.to_mongo()
    match["level"] = {"$in": ERROR_LEVELS}
    pipeline: list[dict[str, Any]] = [
        {"$match": match},
        {
            "$group": {
                "_id": "$service",
                "errors": {"$sum": 1},
                "latest": {
                    "$top": {
                        "sortBy": {"timestamp": -1, "_id": -1},
                        "output": {
                            "id": "$_id",
                            "timestamp": "$timestamp",
                            "level": "$level",
                            "message": {"$substrCP": ["$message", 0, 1000]},
                            "trace_id": "$trace_id",
                        },
                    }
                },
            }
        },
        {"$sort": {"errors": -1, "_id": 1}},
        {"$limit": 1000},
    ]
    rows = await _aggregate(collection, pipeline, max_time_ms)
    services = []
    for row in rows:
        latest = {k: v for k, v in row["latest"].items() if v is not None}
        latest["timestamp"] = iso(latest["timestamp"])
        services.append({"service": row["_id"], "errors": row["errors"], "latest": latest})
    return {
        "since": iso(flt.window.since),
        "until": iso(flt.window.until),
        "total_errors": sum(s["errors"] for s in services),
        "services": services,
    }


async def histogram(
    collection: Collection,
    flt: LogFilter,
    *,
    bucket_s: int,
    group_by: GroupBy,
    max_time_ms: int,
) -> dict[str, Any]:
    size_ms = bucket_s * 1000
    pipeline = histogram_pipeline(flt, bucket_s, group_by)
    rows = await _aggregate(collection, pipeline, max_time_ms)
    # Buckets aligned to the epoch, every one present (zeros included) so charts are continuous.
    first = to_ms(flt.window.since) // size_ms * size_ms
    starts = list(range(first, to_ms(flt.window.until), size_ms))
    counts: dict[int, dict[str, int]] = {start: {} for start in starts}
    for row in rows:
        group = str(row["_id"].get("k", "all"))
        counts.setdefault(row["_id"]["t"], {})[group] = row["n"]
    groups = sorted({g for c in counts.values() for g in c}, key=_group_order)
    return {
        "since": iso(flt.window.since),
        "until": iso(flt.window.until),
        "bucket_seconds": bucket_s,
        "group_by": group_by,
        "groups": groups,
        "total": sum(sum(c.values()) for c in counts.values()),
        "buckets": [
            {
                "start": iso(from_ms(start)),
                "counts": counts[start],
                "total": sum(counts[start].values()),
            }
            for start in sorted(counts)
        ],
    }


def histogram_pipeline(flt: LogFilter, bucket_s: int, group_by: GroupBy) -> list[dict[str, Any]]:
    size_ms = bucket_s * 1000
    ts_ms = {"$toLong": "$timestamp"}
    key: dict[str, Any] = {"t": {"$subtract": [ts_ms, {"$mod": [ts_ms, size_ms]}]}}
    if group_by != "none":
        key["k"] = f"${group_by}"
    return [
        {"$match": flt.to_mongo()},
        {"$group": {"_id": key, "n": {"$sum": 1}}},
        {"$limit": 200_000},
    ]


def _group_order(group: str) -> tuple[int, str]:
    return (LEVELS.index(group), group) if group in LEVELS else (len(LEVELS), group)


async def services_summary(
    collection: Collection, flt: LogFilter, *, max_time_ms: int
) -> dict[str, Any]:
    pipeline: list[dict[str, Any]] = [
        {"$match": flt.to_mongo()},
        {
            "$group": {
                "_id": "$service",
                "count": {"$sum": 1},
                "errors": {"$sum": {"$cond": [{"$in": ["$level", ERROR_LEVELS]}, 1, 0]}},
                "last_seen": {"$max": "$timestamp"},
            }
        },
        {"$sort": {"count": -1, "_id": 1}},
        {"$limit": 5000},
    ]
    rows = await _aggregate(collection, pipeline, max_time_ms)
    return {
        "since": iso(flt.window.since),
        "until": iso(flt.window.until),
        "services": [
            {
                "service": row["_id"],
                "count": row["count"],
                "errors": row["errors"],
                "error_rate": round(row["errors"] / row["count"], 6),
                "last_seen": iso(row["last_seen"]),
            }
            for row in rows
        ],
    }


async def top_messages(
    collection: Collection, flt: LogFilter, *, limit: int, max_time_ms: int
) -> dict[str, Any]:
    match = flt.to_mongo()
    if not flt.levels:
        match["level"] = {"$in": ERROR_LEVELS}
    pipeline: list[dict[str, Any]] = [
        {"$match": match},
        # Messages can be 32 KiB; group on a prefix so keys stay small.
        {
            "$group": {
                "_id": {"$substrCP": ["$message", 0, 200]},
                "count": {"$sum": 1},
                "services": {"$addToSet": "$service"},
                "last_seen": {"$max": "$timestamp"},
            }
        },
        {"$sort": {"count": -1, "_id": 1}},
        {"$limit": limit},
    ]
    rows = await _aggregate(collection, pipeline, max_time_ms)
    return {
        "since": iso(flt.window.since),
        "until": iso(flt.window.until),
        "levels": list(flt.levels) or ERROR_LEVELS,
        "messages": [
            {
                "message": row["_id"],
                "count": row["count"],
                "services": sorted(row["services"]),
                "last_seen": iso(row["last_seen"]),
            }
            for row in rows
        ],
    }
