"""Where reads go (command monitoring), read-your-write, the single-flight cache, metrics."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from logriver_common import clients
from logriver_common.documents import event_to_document
from logriver_common.event import LogEvent
from logriver_common.stream_tokens import StreamTokenSettings, verify_token
from logriver_query.cache import AggregationCache, cache_key
from tests.integration.query.conftest import (
    DataSet,
    QueryApp,
    query_settings,
    start_query_app,
    unique_window,
)
from tests.stack import eventually

pytestmark = [pytest.mark.integration]


async def members(query: QueryApp) -> tuple[tuple[str, int], set[tuple[str, int]]]:
    """The primary and the secondaries, as the replica set reports them right now."""
    hello = await query.mongo.admin.command("hello")

    def address(host: str) -> tuple[str, int]:
        name, _, port = host.rpartition(":")
        return name, int(port)

    primary = address(hello["primary"])
    return primary, {address(h) for h in hello["hosts"]} - {primary}


async def test_list_and_aggregation_reads_go_to_secondaries(
    query: QueryApp, dataset: DataSet
) -> None:
    _, secondaries = await members(query)
    assert len(secondaries) == 2
    before = len(query.commands.reads)
    params = unique_window(dataset)
    assert (await query.http.get("/v1/logs", params={**params, "service": "svc-01"})).is_success
    for path in ("histogram", "errors", "services", "top-messages"):
        assert (await query.http.get(f"/v1/stats/{path}", params=params)).is_success
    reads = query.commands.reads[before:]
    assert {name for name, _, _ in reads} == {"find", "aggregate"}
    # Rollup reads, edge counts and per-service lookups: several reads per endpoint.
    assert len(reads) >= 5
    for name, address, pref in reads:
        assert address in secondaries, f"{name} went to {address}"
        assert pref == {"mode": "secondaryPreferred", "maxStalenessSeconds": 90}


async def test_consistent_reads_see_their_own_write_on_the_primary(
    query: QueryApp, dataset: DataSet
) -> None:
    logs = query.mongo[dataset.database]["logs"]  # default: primary, w=majority
    event = LogEvent(service="consistency", message=f"fresh {uuid.uuid4()}")
    await logs.insert_one(event_to_document(event, None))
    before = len(query.commands.reads)
    resp = await query.http.get(f"/v1/logs/{event.id}", params={"consistent": "true"})
    assert resp.status_code == 200
    assert resp.json()["message"] == event.message
    listed = await query.http.get(
        "/v1/logs", params={"service": "consistency", "since": "5m", "consistent": "true"}
    )
    assert [e["id"] for e in listed.json()["events"]] == [event.id]
    errors = await query.http.get("/v1/stats/services", params={"consistent": "1", "since": "5m"})
    assert errors.headers["x-cache"] == "bypass"
    assert "consistency" in {s["service"] for s in errors.json()["services"]}
    primary, _ = await members(query)
    for name, address, pref in query.commands.reads[before:]:
        assert address == primary, f"{name} went to {address}"
        assert pref is None or pref["mode"] == "primary"
    await logs.delete_one({"_id": event.id})


async def test_concurrent_misses_cost_one_database_query(query: QueryApp, dataset: DataSet) -> None:
    # What one computation reads (rollups, then the two edge minutes), on a key of its own.
    # The same window (how many hours it cuts decides how many reads) with another bucket.
    window = unique_window(dataset)
    before = len(query.commands.reads)
    alone = await query.http.get("/v1/stats/histogram", params={**window, "bucket": "10m"})
    assert alone.headers["x-cache"] == "miss"
    one = len(query.commands.reads) - before
    assert one >= 1
    params = {**window, "bucket": "5m"}
    before = len(query.commands.reads)
    responses = await asyncio.gather(
        *(query.http.get("/v1/stats/histogram", params=params) for _ in range(25))
    )
    assert all(r.status_code == 200 for r in responses)
    assert len(query.commands.reads) - before == one
    # Whether a request arrives while the computation runs or after it was stored depends
    # on the scheduler; either way it costs no read. (The next test holds the computation.)
    outcomes = Counter(r.headers["x-cache"] for r in responses)
    assert outcomes["miss"] == 1
    assert outcomes["coalesced"] + outcomes["hit"] == 24
    assert len({r.content for r in responses}) == 1
    again = await query.http.get("/v1/stats/histogram", params=params)
    assert again.headers["x-cache"] == "hit"
    assert again.content == responses[0].content  # the cached bytes, as they were
    assert len(query.commands.reads) - before == one


async def test_requests_during_a_computation_wait_for_it(query: QueryApp) -> None:
    """The computation is held until 24 more requests for its key are waiting on it: each
    gets its answer ("coalesced"), and the computation ran once."""
    redis = clients.redis_client(query.settings.redis)
    cache = AggregationCache(redis, ttl_s=30, lock_ms=5_000)
    key = cache_key(query.settings.redis.key_prefix, "test", uuid.uuid4().hex)
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def compute() -> dict[str, int]:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return {"n": 7}

    def waiting() -> float:
        value = REGISTRY.get_sample_value(
            "logriver_query_cache_requests_total", {"result": "coalesced"}
        )
        return value or 0.0

    try:
        first = asyncio.create_task(cache.get_or_compute(key, compute))
        await started.wait()
        before = waiting()
        others = [asyncio.create_task(cache.get_or_compute(key, compute)) for _ in range(24)]

        async def all_waiting() -> bool:
            return waiting() - before == 24

        await eventually(all_waiting, within=10, interval=0.01, what="24 waiting requests")
        release.set()
        answers = await asyncio.gather(first, *others)
    finally:
        release.set()
        await redis.aclose()
    assert calls == 1
    assert [a.outcome for a in answers] == ["miss"] + ["coalesced"] * 24
    assert {a.body for a in answers} == {b'{"n":7}'}


async def test_a_cache_without_redis_computes_each_answer_once_and_keeps_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis down: the lookup fails, the answer is computed (once for the requests that
    wait on it in the process) and answered as a bypass that nothing may keep."""
    redis = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)  # nothing listens
    cache = AggregationCache(redis, ttl_s=30, lock_ms=5_000)
    release = asyncio.Event()
    calls = 0

    async def compute() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await release.wait()
        return {"n": 3}

    async def all_looked_up() -> bool:
        return sum("cache unavailable" in r.getMessage() for r in caplog.records) == 5

    try:
        requests = [asyncio.create_task(cache.get_or_compute("k", compute)) for _ in range(5)]
        await eventually(all_looked_up, within=30, interval=0.01, what="5 failed lookups")
        release.set()
        answers = await asyncio.gather(*requests)
    finally:
        release.set()
        await redis.aclose()
    assert calls == 1
    assert Counter(a.outcome for a in answers) == {"bypass": 1, "coalesced": 4}
    assert {a.body for a in answers} == {b'{"n":3}'}
    assert [a.fresh_s for a in answers if a.outcome == "bypass"] == [0.0]  # never kept


async def test_a_miss_stores_its_answer_and_gives_the_lock_back(
    query: QueryApp, dataset: DataSet
) -> None:
    """Store, notify and release go to Redis together (one pipeline): all three happen."""
    redis = clients.redis_client(query.settings.redis)
    prefix = query.settings.redis.key_prefix
    try:
        params = {**unique_window(dataset), "bucket": "15m"}
        miss = await query.http.get("/v1/stats/histogram", params=params)
        assert miss.headers["x-cache"] == "miss"
        keys = {
            k.decode() if isinstance(k, bytes) else k async for k in redis.scan_iter(f"{prefix}*")
        }
        stored = [k for k in keys if not k.endswith(":lock")]
        assert stored, keys
        assert not [k for k in keys if k.endswith(":lock")], keys  # released, not left to expire
        hit = await query.http.get("/v1/stats/histogram", params=params)
        assert hit.headers["x-cache"] == "hit"
        assert hit.content == miss.content
    finally:
        await redis.aclose()


async def test_single_flight_across_instances(query: QueryApp, dataset: DataSet) -> None:
    """Two app instances sharing Redis: the loser waits for the winner's notification."""
    async for other in start_query_app(
        query_settings(dataset.database, redis=query.settings.redis)
    ):
        # A host filter: answered by one aggregation over the events (no rollups).
        params = {**unique_window(dataset), "host": "web-1"}
        before = query.commands.count("aggregate") + other.commands.count("aggregate")
        responses = await asyncio.gather(
            *(
                app.http.get("/v1/stats/services", params=params)
                for _ in range(10)
                for app in (query, other)
            )
        )
        assert all(r.status_code == 200 for r in responses)
        after = query.commands.count("aggregate") + other.commands.count("aggregate")
        assert after - before == 1
        outcomes = Counter(r.headers["x-cache"] for r in responses)
        assert outcomes["miss"] == 1
        assert outcomes["miss"] + outcomes["coalesced"] + outcomes["hit"] == 20


async def test_slow_queries_are_logged_and_metrics_exported(
    query: QueryApp,
    dataset: DataSet,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(query.settings, "slow_query_ms", 0.0)
    with caplog.at_level(logging.WARNING, logger="logriver_query.slow"):
        resp = await query.http.get("/v1/logs", params={**dataset.params, "service": "svc-08"})
    assert resp.status_code == 200
    slow = [r for r in caplog.records if r.getMessage() == "slow query"]
    assert slow
    assert slow[0].query_kind == "search"  # type: ignore[attr-defined]
    assert slow[0].params["service"] == ["svc-08"]  # type: ignore[attr-defined]
    assert slow[0].duration_ms > 0  # type: ignore[attr-defined]

    metrics = (await query.http.get("/metrics")).text
    assert (
        'logriver_query_request_seconds_count{endpoint="/v1/logs",method="GET",status="200"}'
        in metrics
    )
    assert 'logriver_query_cache_requests_total{result="hit"}' in metrics
    assert 'logriver_query_slow_queries_total{kind="search"}' in metrics
    assert 'logriver_query_db_seconds_bucket{kind="histogram"' in metrics


async def test_stream_tokens_and_console_config(query: QueryApp) -> None:
    resp = await query.http.post("/v1/stream-tokens")
    assert resp.status_code == 200
    body = resp.json()
    claims = verify_token(StreamTokenSettings(), body["token"])
    assert claims.key_id == "dev"
    assert claims.scopes == ["read"]
    assert body["expires_at"] > datetime.now(UTC).timestamp()
    assert (
        await query.http.post("/v1/stream-tokens", headers={"X-API-Key": ""})
    ).status_code == 401

    config = (await query.http.get("/v1/console/config", headers={"X-API-Key": ""})).json()
    assert config["stream_base_url"] == "http://127.0.0.1:8002"
    assert config["dev_key"].startswith("lr_devlocal_")
