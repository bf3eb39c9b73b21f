"""Aggregation numbers equal counts computed independently from the inserted events."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, WriteConcern

from logriver_common.documents import event_to_document
from logriver_common.event import Level, LogEvent
from logriver_common.indexes import rollup_collection_names
from logriver_writer.rollups import template_of
from tests.integration.query.conftest import (
    DataSet,
    QueryApp,
    in_every_snapshot,
    query_settings,
    spread_events,
    start_query_app,
    stored,
    unique_window,
)
from tests.stack import STACK

pytestmark = [pytest.mark.integration]
ERRORS = ("ERROR", "CRITICAL")


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def get(query: QueryApp, path: str, params: dict[str, Any]) -> dict[str, Any]:
    resp = await query.http.get(path, params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_error_summary(query: QueryApp, dataset: DataSet) -> None:
    body = await get(query, "/v1/stats/errors", dataset.params)
    errors = [d for d in dataset.docs if d["level"] in ERRORS]
    counts = Counter(d["service"] for d in errors)
    latest = {}
    for d in sorted(errors, key=lambda d: (d["timestamp"], d["_id"])):
        latest[d["service"]] = d
    assert body["total_errors"] == len(errors)
    assert {s["service"]: s["errors"] for s in body["services"]} == counts
    for row in body["services"]:
        want = latest[row["service"]]
        assert row["latest"]["id"] == want["_id"]
        assert row["latest"]["message"] == want["message"]
        assert row["latest"]["timestamp"] == iso(want["timestamp"])


async def test_histogram_by_level_and_by_service(query: QueryApp, dataset: DataSet) -> None:
    for group_by, field in (("level", "level"), ("service", "service")):
        body = await get(
            query, "/v1/stats/histogram", {**dataset.params, "bucket": "1m", "group_by": group_by}
        )
        assert body["bucket_seconds"] == 60
        want: dict[str, Counter[str]] = defaultdict(Counter)
        for d in dataset.docs:
            epoch_ms = int(d["timestamp"].timestamp() * 1000)
            start = datetime.fromtimestamp(epoch_ms // 60_000 * 60, UTC)
            want[iso(start)][d[field]] += 1
        got = {b["start"]: Counter(b["counts"]) for b in body["buckets"] if b["total"]}
        assert got == want
        assert body["total"] == len(dataset.docs)
        starts = [b["start"] for b in body["buckets"]]
        assert starts == sorted(starts)  # continuous, zero buckets included


async def test_histogram_filtered_and_automatic_bucket(query: QueryApp, dataset: DataSet) -> None:
    params = {**dataset.params, "service": "svc-04", "level": ">=WARNING", "group_by": "none"}
    body = await get(query, "/v1/stats/histogram", params)
    want = sum(
        1 for d in dataset.docs if d["service"] == "svc-04" and d["level"] in ("WARNING", *ERRORS)
    )
    assert body["total"] == want
    assert len(body["buckets"]) <= 61
    assert body["groups"] == ["all"]


async def test_services_summary(query: QueryApp, dataset: DataSet) -> None:
    body = await get(query, "/v1/stats/services", dataset.params)
    counts = Counter(d["service"] for d in dataset.docs)
    errors = Counter(d["service"] for d in dataset.docs if d["level"] in ERRORS)
    last_seen: dict[str, datetime] = {}
    for d in dataset.docs:
        last_seen[d["service"]] = max(d["timestamp"], last_seen.get(d["service"], d["timestamp"]))
    assert {s["service"]: s["count"] for s in body["services"]} == counts
    for row in body["services"]:
        name = row["service"]
        assert row["errors"] == errors[name]
        assert row["error_rate"] == pytest.approx(errors[name] / counts[name], abs=1e-6)
        assert row["last_seen"] == iso(last_seen[name])


@pytest.mark.parametrize("services", [None, ["svc-01", "svc-02"]])
async def test_summaries_count_and_find_each_newest_event_in_one_command(
    query: QueryApp, dataset: DataSet, services: list[str] | None
) -> None:
    """The errors and services summaries read their counts and each service's newest event
    in one aggregate command, with or without a service filter (the newest-event reads bound
    `service` themselves when the filter does not), and both still equal the events."""
    docs = [d for d in dataset.docs if services is None or d["service"] in services]
    newest: dict[str, dict[str, Any]] = {}
    newest_error: dict[str, dict[str, Any]] = {}
    for d in sorted(docs, key=lambda d: (d["timestamp"], d["_id"])):
        newest[d["service"]] = d
        if d["level"] in ERRORS:
            newest_error[d["service"]] = d
    params: dict[str, Any] = unique_window(dataset)
    if services:
        params["service"] = services
    before = len(query.commands.reads)
    body = await get(query, "/v1/stats/services", params)
    assert [name for name, _, _ in query.commands.reads[before:]] == ["aggregate"]
    assert body["source"] == "rollups"
    assert {s["service"]: s["count"] for s in body["services"]} == Counter(
        d["service"] for d in docs
    )
    assert {s["service"]: s["last_seen"] for s in body["services"]} == {
        name: iso(d["timestamp"]) for name, d in newest.items()
    }
    before = len(query.commands.reads)
    body = await get(query, "/v1/stats/errors", params)
    assert [name for name, _, _ in query.commands.reads[before:]] == ["aggregate"]
    assert body["source"] == "rollups"
    assert {s["service"]: s["latest"]["id"] for s in body["services"]} == {
        name: d["_id"] for name, d in newest_error.items()
    }


async def test_top_messages(query: QueryApp, dataset: DataSet) -> None:
    body = await get(query, "/v1/stats/top-messages", {**dataset.params, "limit": 5})
    # Grouped by template: "timed out after 31 ms" and "... 47 ms" are one message.
    counts = Counter(template_of(d["message"]) for d in dataset.docs if d["level"] in ERRORS)
    top = body["messages"]
    assert len(top) == 5
    for row in top:
        assert row["count"] == counts[row["message"]]
    assert [r["count"] for r in top] == sorted(counts.values(), reverse=True)[:5]
    assert body["levels"] == list(ERRORS)


def _hist_want(docs: list[dict[str, Any]], size_s: int) -> dict[str, Counter[str]]:
    want: dict[str, Counter[str]] = defaultdict(Counter)
    for d in docs:
        epoch_ms = int(d["timestamp"].timestamp() * 1000)
        start = datetime.fromtimestamp(epoch_ms // (size_s * 1000) * size_s, UTC)
        want[iso(start)][d["level"]] += 1
    return want


@pytest.mark.parametrize(
    ("extra", "keep", "source"),
    [
        (
            {"service": "svc-03", "level": ">=WARNING"},
            lambda d: d["service"] == "svc-03" and d["level"] in ("WARNING", *ERRORS),
            "rollups",
        ),
        ({"host": "web-3"}, lambda d: d.get("host") == "web-3", "scan"),
        ({"env": "staging"}, lambda d: d.get("env") == "staging", "scan"),
        ({"meta.attempt": "2"}, lambda d: d["metadata"]["attempt"] == 2, "scan"),
        ({"q": "TIMED OUT"}, lambda d: "timed out" in d["message"].lower(), "scan"),
        (
            {"q": "connection reset", "match": "word"},
            lambda d: {"connection", "reset"} <= set(d["message"].lower().split()),
            "scan",
        ),
        ({"trace_id": f"{3:032x}"}, lambda d: d.get("trace_id") == f"{3:032x}", "scan"),
    ],
)
async def test_every_search_filter_narrows_the_histogram(
    query: QueryApp, dataset: DataSet, extra: dict[str, str], keep: Any, source: str
) -> None:
    body = await get(query, "/v1/stats/histogram", {**dataset.params, "bucket": "1m", **extra})
    docs = [d for d in dataset.docs if keep(d)]
    assert docs, "the filter should keep some events"
    got = {b["start"]: Counter(b["counts"]) for b in body["buckets"] if b["total"]}
    want = _hist_want(docs, 60)
    assert body["source"] == source
    if body["truncated"]:
        # A scan out of budget (a loaded machine): exact from `complete_since` on.
        assert source == "scan"
        assert body["complete_since"] > body["since"]
        got = {k: v for k, v in got.items() if k >= body["complete_since"]}
        want = {k: v for k, v in want.items() if k >= body["complete_since"]}
        assert got
    else:
        assert body["total"] == len(docs)
    assert got == want


async def test_rollup_histograms_answer_30_days_exactly(query: QueryApp, dataset: DataSet) -> None:
    until = dataset.newest + timedelta(seconds=1)
    params = {"since": iso(until - timedelta(days=30)), "until": iso(until), "bucket": "1h"}
    body = await get(query, "/v1/stats/histogram", params)
    assert body["source"] == "rollups"
    assert body["total"] == len(dataset.docs)
    assert len(body["buckets"]) in (720, 721)


async def test_a_scan_that_runs_out_of_budget_says_so(dataset: DataSet) -> None:
    from tests.integration.query.conftest import query_settings, start_query_app

    async for slow in start_query_app(query_settings(dataset.database, scan_budget_ms=10)):
        resp = await slow.http.get(
            "/v1/stats/histogram",
            params={**dataset.params, "q": "no such text", "bucket": "10s", "consistent": "true"},
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["source"] == "scan"
        assert body["truncated"] is True
        assert body["complete_since"] > body["since"]


@pytest.fixture(scope="module")
async def spread(stack: None) -> AsyncIterator[tuple[QueryApp, list[dict[str, Any]], datetime]]:
    """4,000 events at random times over 54 hours: every rollup part (minutes, quarters, hours)
    and both partial edge hours hold counts, and a window can hold a whole UTC day."""
    messages = [
        "spread event",
        "spread timeout after 31 ms",
        "spread timeout after 47 ms",
        "spread miss",
    ]
    docs, newest = spread_events(4_000, 54, seed=11, message=messages)
    async with stored(docs, "test_spread") as database:
        async for app in start_query_app(query_settings(database)):
            yield app, docs, newest


@pytest.mark.parametrize("bucket", ["1m", "5m", "15m", "30m", "1h", "3h"])
async def test_histogram_buckets_equal_counts_over_the_events_at_odd_edges(
    spread: tuple[QueryApp, list[dict[str, Any]], datetime], bucket: str
) -> None:
    """Whole hours read hour or quarter counts, edge hours read minutes, edge seconds scan
    the events: whatever mix a window needs, each bucket equals a count over the events."""
    app, docs, newest = spread
    size_ms = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "3h": 180}[bucket] * 60_000
    for hours, odd in ((26, 17.3), (5, 1.7), (1, 0.4)):
        if hours * 3_600_000 // size_ms > 1_000:
            continue  # past the bucket limit (a 400, tested elsewhere)
        until = newest - timedelta(seconds=odd * 60)
        since = until - timedelta(hours=hours, seconds=odd)
        params = {"since": iso(since), "until": iso(until), "bucket": bucket}
        body = await get(app, "/v1/stats/histogram", params)
        assert body["source"] == "rollups"
        want: dict[str, Counter[str]] = defaultdict(Counter)
        for d in docs:
            if since <= d["timestamp"] < until:
                ms = int(d["timestamp"].timestamp() * 1000)
                want[iso(datetime.fromtimestamp(ms // size_ms * size_ms / 1000, UTC))][
                    d["level"]
                ] += 1
        got = {b["start"]: Counter(b["counts"]) for b in body["buckets"] if b["total"]}
        assert got == want, (bucket, hours)
        window = {"since": iso(since), "until": iso(until)}
        by_service = await get(app, "/v1/stats/services", window)
        in_window = [d for d in docs if since <= d["timestamp"] < until]
        assert {s["service"]: s["count"] for s in by_service["services"]} == Counter(
            d["service"] for d in in_window
        )


async def test_top_messages_equal_counts_over_the_events_at_odd_edges(
    spread: tuple[QueryApp, list[dict[str, Any]], datetime],
) -> None:
    """Whole hours from the daily template rollups (whole days, and the hours of cut days)
    and the cut hours from the events (one command): each template's count, services and
    last event equal the events'. Two of the four messages are one template ("spread
    timeout after <n> ms")."""
    app, docs, newest = spread
    windows = (
        (52, 17.3, ERRORS),
        (26, 17.3, ERRORS),
        (5, 1.7, ("INFO", "ERROR")),
        (1, 0.4, ERRORS),
    )
    for hours, odd, levels in windows:
        until = newest - timedelta(seconds=odd * 60)
        since = until - timedelta(hours=hours, seconds=odd)
        await _assert_top_messages_match(app, docs, since, until, levels)


async def _assert_top_messages_match(
    app: QueryApp,
    docs: list[dict[str, Any]],
    since: datetime,
    until: datetime,
    levels: tuple[str, ...],
) -> None:
    params = {"since": iso(since), "until": iso(until), "level": list(levels), "limit": 50}
    body = await get(app, "/v1/stats/top-messages", params)
    in_window = [d for d in docs if since <= d["timestamp"] < until and d["level"] in levels]
    counts = Counter(template_of(d["message"]) for d in in_window)
    assert len(counts) == 3
    assert {m["message"]: m["count"] for m in body["messages"]} == counts, (since, until)
    for row in body["messages"]:
        of_row = [d for d in in_window if template_of(d["message"]) == row["message"]]
        assert row["services"] == sorted({d["service"] for d in of_row})
        assert row["last_seen"] == iso(max(d["timestamp"] for d in of_row))


async def test_top_messages_add_the_hourly_template_counts_of_older_writers(
    stack: None,
) -> None:
    """A store that older writers filled holds hourly template documents beside the daily
    ones (each event counted in one of them): top messages add both until the hourly ones
    expire."""
    messages = ["legacy timeout after 31 ms", "legacy disk full", "legacy cache miss 7"]
    docs, newest = spread_events(1_500, 50, seed=5, message=messages)
    async with stored(docs, "test_legacy_templates") as database:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
        try:
            await _move_hours_to_hourly_documents(client[database], every=3)
        finally:
            await client.close()
        await in_every_snapshot(database)
        async for app in start_query_app(query_settings(database)):
            until = newest - timedelta(minutes=7)
            for hours in (49, 20, 3):
                since = until - timedelta(hours=hours, minutes=11)
                await _assert_top_messages_match(app, docs, since, until, ERRORS)


async def _move_hours_to_hourly_documents(db: Any, *, every: int) -> None:
    """Move every ``every``-th hour of each daily template document into an hourly
    document, as an older writer stored it (``t`` = the hour, its count and last event)."""
    names = rollup_collection_names("logs")
    daily = db.get_collection(names.templates, write_concern=WriteConcern(w=3))
    hourly = db.get_collection(names.legacy_templates, write_concern=WriteConcern(w=3))
    moved = 0
    async for doc in daily.find():
        for hour, n in list(doc["h"].items()):
            if int(hour) % every:
                continue
            start = doc["t"] + timedelta(hours=int(hour))
            hour_ms = int(start.timestamp() * 1000)
            await hourly.insert_one(
                {
                    "_id": f"{hour_ms}|{doc['service']}|{doc['level']}|{doc['th']}",
                    "t": start,
                    "service": doc["service"],
                    "level": doc["level"],
                    "th": doc["th"],
                    "template": doc["template"],
                    "n": n,
                    "last": doc["l"][hour],
                }
            )
            await daily.update_one(
                {"_id": doc["_id"]},
                {"$inc": {"n": -n}, "$unset": {f"h.{hour}": "", f"l.{hour}": ""}},
            )
            moved += 1
    assert moved > 50


async def test_top_messages_of_a_short_window_rank_and_name_in_mongodb(stack: None) -> None:
    """Without a whole hour the events alone answer: MongoDB ranks them, keeps the top
    `limit` and names them from the dictionary in one command. Events stored before
    templates existed (no `th`) are named by their message and, on equal counts, come
    after the templates (the order MongoDB sorts numbers and strings in)."""
    # 40 minutes into the last whole hour: the window below lies inside one hour.
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    newest = hour + timedelta(minutes=40)

    def events(message: str, count: int) -> list[dict[str, Any]]:
        return [
            event_to_document(
                LogEvent(
                    timestamp=newest - timedelta(seconds=10 * i + 1),
                    service=f"svc-0{i % 2}",
                    level=Level.ERROR,
                    message=message.format(n=i),
                ),
                None,
            )
            for i in range(count)
        ]

    templated = events("alpha failed after {n} ms", 6) + events("beta down", 4)
    templated += events("gamma slow", 3)
    legacy = events("legacy crash", 4) + events("legacy other", 2)
    async with stored(templated, "test_top_short") as database:
        await _store_without_template_hash(database, legacy)
        async for app in start_query_app(query_settings(database)):
            window = {"since": iso(newest - timedelta(minutes=30)), "until": iso(newest)}
            ranked = [
                (template_of("alpha failed after 0 ms"), 6),
                (template_of("beta down"), 4),
                ("legacy crash", 4),
                (template_of("gamma slow"), 3),
                ("legacy other", 2),
            ]
            for limit in (3, 10):
                before = len(app.commands.reads)
                body = await get(app, "/v1/stats/top-messages", {**window, "limit": limit})
                got = [(m["message"], m["count"]) for m in body["messages"]]
                assert got == ranked[:limit]
                commands = [name for name, _, _ in app.commands.reads[before:]]
                assert commands == ["aggregate"], "ranked and named in one command"
            assert body["messages"][0]["services"] == ["svc-00", "svc-01"]


@pytest.mark.parametrize(
    ("filters", "group_by"),
    [
        ({}, "level"),  # per-level totals
        ({}, "service"),  # per-service totals
        ({}, "none"),  # per-level totals, summed
        ({"level": ["ERROR", "CRITICAL"]}, "service"),  # per-service error totals
        ({"level": ["ERROR"]}, "service"),  # one error level: per (service, level)
        ({"level": [">=WARNING"]}, "level"),  # per-level totals, some levels
        ({"service": ["svc-01", "svc-02"]}, "level"),  # per (service, level)
        ({"service": ["svc-01", "svc-02"]}, "none"),  # per-service totals of two services
    ],
)
async def test_every_kind_of_count_equals_the_events(
    spread: tuple[QueryApp, list[dict[str, Any]], datetime],
    filters: dict[str, list[str]],
    group_by: str,
) -> None:
    """Whichever rollups a filter and grouping read (totals over services or levels, the
    error totals, or the per-service-and-level counts), each bucket equals the events'."""
    app, docs, newest = spread
    levels = {"ERROR", "CRITICAL"} if filters.get("level") == ["ERROR", "CRITICAL"] else None
    if filters.get("level") == ["ERROR"]:
        levels = {"ERROR"}
    if filters.get("level") == [">=WARNING"]:
        levels = {"WARNING", "ERROR", "CRITICAL"}
    services = set(filters.get("service", [])) or None
    until = newest - timedelta(seconds=17.3 * 60)
    since = until - timedelta(hours=26, seconds=17.3)
    for bucket, size_ms in (("30m", 1_800_000), ("15m", 900_000)):
        params = {"since": iso(since), "until": iso(until), "bucket": bucket, "group_by": group_by}
        body = await get(app, "/v1/stats/histogram", {**params, **filters})
        assert body["source"] == "rollups"
        want: dict[str, Counter[str]] = defaultdict(Counter)
        for d in docs:
            if not since <= d["timestamp"] < until:
                continue
            if (levels and d["level"] not in levels) or (services and d["service"] not in services):
                continue
            ms = int(d["timestamp"].timestamp() * 1000)
            group = d[group_by] if group_by != "none" else "all"
            want[iso(datetime.fromtimestamp(ms // size_ms * size_ms / 1000, UTC))][group] += 1
        got = {b["start"]: Counter(b["counts"]) for b in body["buckets"] if b["total"]}
        assert got == want, bucket


async def test_top_messages_subtract_the_events_outside_a_cut_hour(stack: None) -> None:
    """An hour the window cuts is counted from its events inside the window, or as the
    rollups' whole hour less its events outside, whichever reads fewer; both at one point
    in time (read concern snapshot). Either way each template's count, services and last
    event equal the events', including events stored before templates existed (no `th`)
    inside a subtracted hour, and templates whose last event in the hour lies after the
    window."""
    messages = ["cut timeout after 31 ms", "cut disk full", "cut cache miss 7"]
    docs, newest = spread_events(3_000, 30, seed=23, message=messages)
    anchor = newest.replace(minute=0, second=0) - timedelta(hours=3)  # a whole hour ago
    minutes = timedelta(minutes=1)
    windows = {
        # (since, until): which cut hours are subtracted (older, newer)
        "both subtracted": (anchor - timedelta(hours=20) + 5 * minutes, anchor + 50 * minutes),
        "both from events": (anchor - timedelta(hours=20) + 50 * minutes, anchor + 10 * minutes),
        "older subtracted": (anchor - timedelta(hours=4) + 5 * minutes, anchor + 10 * minutes),
        "no whole hour": (anchor - 55 * minutes, anchor + 50 * minutes),
    }
    # Events stored before templates existed, inside the subtracted hours.
    legacy = [
        event_to_document(
            LogEvent(
                timestamp=when + timedelta(seconds=7 * i),
                service=f"svc-0{i % 2}",
                level=Level.ERROR,
                message="cut legacy crash",
            ),
            None,
        )
        for i in range(3)
        for when in (anchor - timedelta(hours=20) + 20 * minutes, anchor + 20 * minutes)
    ]
    async with stored(docs, "test_top_cut") as database:
        await _store_without_template_hash(database, legacy)
        everything = docs + legacy
        async for app in start_query_app(query_settings(database)):
            for name, (since, until) in windows.items():
                before = len(app.commands.concerns)
                params = {"since": iso(since), "until": iso(until), "limit": 50}
                body = await get(app, "/v1/stats/top-messages", params)
                in_window = [
                    d
                    for d in everything
                    if since <= d["timestamp"] < until and d["level"] in ERRORS
                ]
                named = [
                    (template_of(d["message"]) if "th" in d else d["message"], d) for d in in_window
                ]
                want = Counter(key for key, _ in named)
                assert {m["message"]: m["count"] for m in body["messages"]} == want, name
                for row in body["messages"]:
                    of_row = [d for key, d in named if key == row["message"]]
                    assert row["services"] == sorted({d["service"] for d in of_row}), name
                    assert row["last_seen"] == iso(max(d["timestamp"] for d in of_row)), name
                snapshot = "snapshot" in app.commands.concerns[before:]
                assert snapshot == (name != "both from events"), name


async def _store_without_template_hash(database: str, docs: list[dict[str, Any]]) -> None:
    """Store ``docs`` as writers stored events before templates existed (no ``th``, in no
    rollup), on every member and in every member's snapshot."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri)
    try:
        logs = client[database]["logs"].with_options(write_concern=WriteConcern(w=3))
        await logs.insert_many(docs)
    finally:
        await client.close()
    await in_every_snapshot(database)
