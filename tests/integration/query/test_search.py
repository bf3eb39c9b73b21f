"""Search over 200k events: every filter, and cursor pagination that never skips or repeats."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import WriteConcern

from logriver_common.documents import event_to_document, levels_at_or_above
from logriver_common.event import Level, LogEvent
from logriver_common.indexes import words_of
from tests.integration.query.conftest import DataSet, QueryApp

pytestmark = [pytest.mark.integration]
Doc = dict[str, Any]


async def page_all(
    query: QueryApp, params: dict[str, Any], *, limit: int = 1000
) -> tuple[list[str], int]:
    """Follow next_cursor to the end; the ids in order and the number of pages."""
    ids: list[str] = []
    pages = 0
    cursor = None
    while True:
        resp = await query.http.get(
            "/v1/logs", params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        ids.extend(event["id"] for event in body["events"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages


def expected(dataset: DataSet, keep: Callable[[Doc], bool]) -> list[str]:
    """Ids matching `keep`, in the API's order (timestamp desc, then _id desc)."""
    docs = sorted(
        (d for d in dataset.docs if keep(d)),
        key=lambda d: (d["timestamp"], d["_id"]),
        reverse=True,
    )
    return [d["_id"] for d in docs]


def cases(dataset: DataSet) -> list[tuple[dict[str, Any], Callable[[Doc], bool]]]:
    newest = dataset.newest
    since = newest - timedelta(seconds=120)
    until = newest - timedelta(seconds=60)
    timeout = re.compile("TIMED OUT", re.IGNORECASE)
    return [
        ({"service": "svc-03"}, lambda d: d["service"] == "svc-03"),
        (
            {"service": ["svc-01", "svc-02,svc-07"], "level": "ERROR"},
            lambda d: d["service"] in ("svc-01", "svc-02", "svc-07") and d["level"] == "ERROR",
        ),
        ({"level": ">=ERROR"}, lambda d: d["level"] in levels_at_or_above("ERROR")),
        (
            {"since": since.isoformat(), "until": until.isoformat()},
            lambda d: since <= d["timestamp"] < until,
        ),
        ({"trace_id": f"{7:032x}"}, lambda d: d.get("trace_id") == f"{7:032x}"),
        (
            {"host": "web-3", "env": "staging"},
            lambda d: d["host"] == "web-3" and d["env"] == "staging",
        ),
        (
            {"q": "TIMED OUT", "service": "svc-05"},
            lambda d: bool(timeout.search(d["message"])) and d["service"] == "svc-05",
        ),
        (
            {"q": "user:42", "level": "INFO"},
            lambda d: "user:42" in d["message"] and d["level"] == "INFO",
        ),
        ({"meta.order": "A-17"}, lambda d: d["metadata"]["order"] == "A-17"),
        (
            {"meta.attempt": "3", "service": "svc-11", "level": "WARNING"},
            lambda d: (
                d["metadata"]["attempt"] == 3
                and d["service"] == "svc-11"
                and d["level"] == "WARNING"
            ),
        ),
    ]


async def test_every_filter_matches_an_independent_count(query: QueryApp, dataset: DataSet) -> None:
    for params, keep in cases(dataset):
        want = expected(dataset, keep)
        assert want, f"the data set has no match for {params}"
        got, _ = await page_all(query, {**dataset.params, **params})
        assert got == want, params


async def test_oldest_first_pages_are_the_reverse(query: QueryApp, dataset: DataSet) -> None:
    params = {**dataset.params, "service": "svc-09", "level": ">=WARNING"}
    newest_first, _ = await page_all(query, params, limit=97)
    oldest_first, _ = await page_all(query, {**params, "order": "asc"}, limit=97)
    assert oldest_first == newest_first[::-1]
    assert len(set(newest_first)) == len(newest_first) > 97


async def test_whole_set_exactly_once_while_writes_continue(
    query: QueryApp, dataset: DataSet
) -> None:
    """200k events, 50 per timestamp, paged 1000 at a time while new events land in the range."""
    logs = query.mongo[dataset.database]["logs"].with_options(write_concern=WriteConcern(w=1))
    stop = asyncio.Event()
    written: list[str] = []

    async def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            # New events share timestamps with existing ones, ahead of and behind the cursor.
            at = dataset.newest - timedelta(milliseconds=250 * (n * 37 % 4000))
            batch = [
                event_to_document(
                    LogEvent(service="late", message=f"late {n}-{k}", timestamp=at), None
                )
                for k in range(20)
            ]
            await logs.insert_many(batch)
            written.extend(d["_id"] for d in batch)
            n += 1
            await asyncio.sleep(0.02)

    writer = asyncio.create_task(keep_writing())
    try:
        ids, pages = await page_all(query, dataset.params)
    finally:
        stop.set()
        await writer
    try:
        counts = Counter(ids)
        assert not [i for i, c in counts.items() if c > 1], "an event was returned twice"
        original = {d["_id"] for d in dataset.docs}
        assert original <= counts.keys(), f"{len(original - counts.keys())} events were skipped"
        assert len(written) > 100  # the writes really overlapped the paging
        assert pages >= len(original) // 1000
    finally:
        await logs.delete_many({"service": "late"})


async def test_event_and_trace_lookup(query: QueryApp, dataset: DataSet) -> None:
    doc = dataset.docs[1234]
    resp = await query.http.get(f"/v1/logs/{doc['_id']}")
    assert resp.status_code == 200
    assert resp.json()["message"] == doc["message"]
    assert "expire_at" not in resp.json()
    assert (await query.http.get("/v1/logs/no-such-event")).status_code == 404

    trace_id = f"{12:032x}"
    trace = (await query.http.get(f"/v1/traces/{trace_id.upper()}")).json()
    want = sorted(
        (d for d in dataset.docs if d.get("trace_id") == trace_id),
        key=lambda d: (d["timestamp"], d["_id"]),
    )
    assert [e["id"] for e in trace["events"]] == [d["_id"] for d in want]
    assert len(want) == 5
    assert trace["jaeger_url"] == f"http://127.0.0.1:16686/trace/{trace_id}"
    assert not trace["truncated"]


async def test_an_event_reads_as_the_api_shows_it(query: QueryApp, dataset: DataSet) -> None:
    """MongoDB builds the API's view (EVENT_VIEW): the event's own names in a fixed order,
    dates as RFC 3339 with milliseconds, unset fields left out, no storage bookkeeping
    (`expire_at`, the template hash `th`); a lookup, a page and a trace show it alike."""
    logs = query.mongo[dataset.database]["logs"]
    at = datetime(2026, 3, 4, 5, 6, 7, 89_000, tzinfo=UTC)
    full = LogEvent(
        timestamp=at,
        service="view-full",
        level=Level.ERROR,
        message="$where is a message, not an operator",
        trace_id=uuid.uuid4().hex,  # no trace of the data set's
        span_id=f"{78:016x}",
        host="web-1",
        env="prod",
        metadata={"nested": {"list": [1, "two", None]}, "n": 3},
        received_at=at + timedelta(milliseconds=5),
    )
    bare = LogEvent(timestamp=at.replace(microsecond=0), service="view-bare", message="bare")
    # Expiring in the future: the TTL monitor deletes a document whose `expire_at` has
    # passed at any moment, between two of the reads below (it did, once, in CI).
    expires = datetime.now(UTC) + timedelta(days=7)
    stored = [event_to_document(e, expires) for e in (full, bare)]
    for document in stored:
        document["th"] = -(2**63)
    # A document stored with a date field as text (not something logriver writes) shows it.
    odd = {**event_to_document(bare, None), "_id": f"odd-{bare.id}", "received_at": "text"}
    await logs.insert_many([*stored, odd])
    try:
        want_full = {
            "id": full.id,
            "timestamp": "2026-03-04T05:06:07.089Z",
            "level": "ERROR",
            "service": "view-full",
            "message": full.message,
            "trace_id": full.trace_id,
            "span_id": full.span_id,
            "host": "web-1",
            "env": "prod",
            "metadata": {"nested": {"list": [1, "two", None]}, "n": 3},
            "received_at": "2026-03-04T05:06:07.094Z",
        }
        want_bare = {
            "id": bare.id,
            "timestamp": "2026-03-04T05:06:07.000Z",
            "level": "INFO",
            "service": "view-bare",
            "message": "bare",
        }
        fresh = {"consistent": "true"}
        for want in (want_full, want_bare):
            got = (await query.http.get(f"/v1/logs/{want['id']}", params=fresh)).json()
            assert list(got.items()) == list(want.items())  # the order too
        page = await query.http.get(
            "/v1/logs",
            params={
                **fresh,
                "service": "view-full",
                "since": "2026-03-04T00:00:00Z",
                "until": "2026-03-05T00:00:00Z",
            },
        )
        assert page.json()["events"] == [want_full]
        trace = await query.http.get(f"/v1/traces/{full.trace_id}", params=fresh)
        assert trace.json()["events"] == [want_full]
        shown = (await query.http.get(f"/v1/logs/{odd['_id']}", params=fresh)).json()
        assert shown["received_at"] == "text"
    finally:
        await logs.delete_many({"_id": {"$in": [full.id, bare.id, odd["_id"]]}})


async def test_read_scope_is_required(query: QueryApp) -> None:
    resp = await query.http.get("/v1/logs", headers={"X-API-Key": ""})
    assert resp.status_code == 401
    assert resp.json()["error"] == "unauthorized"
    resp = await query.http.get("/v1/logs", headers={"X-API-Key": "lr_nope_nope"})
    assert resp.status_code == 401


async def _all_pages(app: QueryApp, params: dict[str, str]) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        resp = await app.http.get(
            "/v1/logs", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        ids += [e["id"] for e in body["events"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages


def _has_words(message: str, *words: str) -> bool:
    return set(words) <= set(words_of(message))


async def test_whole_word_search_reads_the_dictionarys_templates(
    query: QueryApp, dataset: DataSet
) -> None:
    params = {**dataset.params, "q": "Reset connection", "match": "word", "limit": "1000"}
    ids, _ = await _all_pages(query, params)
    want = {d["_id"] for d in dataset.docs if _has_words(d["message"], "connection", "reset")}
    assert want
    assert set(ids) == want
    assert len(ids) == len(want)
    db = query.mongo[dataset.database]
    templates = await db["logs_templates"].distinct("_id", {"words": {"$all": ["reset"]}})
    assert len(templates) == 1
    plan = (
        await db["logs"]
        .find(
            {"th": {"$in": templates}, "timestamp": {"$gte": dataset.oldest}},
            sort=[("timestamp", -1), ("_id", -1)],
        )
        .explain()
    )
    text = str(plan["queryPlanner"]["winningPlan"])
    assert "th_timestamp_id" in text
    assert "'stage': 'SORT'" not in text


@pytest.mark.parametrize(
    ("q", "words"),
    [
        # A masked word (with a digit) is not in the dictionary: the time-sliced scan.
        ("attempt 3", ("attempt", "3")),
        # A template's placeholder (`<n>` holds the word "n") never matches a message
        # without the word.
        ("n", ("n",)),
        ("percent", ("percent",)),
        ("user", ("user",)),
    ],
)
async def test_whole_word_search_is_exact_for_masked_words_and_placeholders(
    query: QueryApp, dataset: DataSet, q: str, words: tuple[str, ...]
) -> None:
    params = {**dataset.params, "q": q, "match": "word", "limit": "1000"}
    ids, _ = await _all_pages(query, params)
    want = {d["_id"] for d in dataset.docs if _has_words(d["message"], *words)}
    assert set(ids) == want
    assert len(ids) == len(want)


async def test_substring_search_pages_by_time_slice_within_its_budget(dataset: DataSet) -> None:
    """A tiny budget: pages may come back short, with cursors; together they are exact."""
    from tests.integration.query.conftest import query_settings, start_query_app

    async for app in start_query_app(query_settings(dataset.database, text_page_budget_ms=10)):
        params = {**dataset.params, "q": "PEER", "limit": "1000"}
        ids, pages = await _all_pages(app, params)
        want = {d["_id"] for d in dataset.docs if "peer" in d["message"].lower()}
        assert len(ids) == len(want)
        assert set(ids) == want
        assert pages > 1
