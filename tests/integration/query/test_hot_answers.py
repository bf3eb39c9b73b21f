"""Hot answers: a repeat of a cached request is answered before routing, and only then.

Each test shows what the layer must keep: the same bytes, no database or Redis work for a
repeat, the same authentication answers, and no answer older than its Redis entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from logriver_common.auth import ApiKeyStore, Scope
from tests.integration.query.conftest import (
    DataSet,
    QueryApp,
    query_settings,
    start_query_app,
    unique_window,
)
from tests.stack import STACK

pytestmark = [pytest.mark.integration]
HISTOGRAM = "/v1/stats/histogram"


async def forget_redis(app: QueryApp) -> None:
    """Empty this app's Redis namespace: what is answered next did not come from Redis."""
    redis = Redis.from_url(STACK.redis_url)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{app.settings.redis.key_prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.fixture
async def fresh(dataset: DataSet) -> AsyncIterator[QueryApp]:
    """An app of its own: hot answers are per process."""
    async for app in start_query_app(query_settings(dataset.database)):
        yield app


async def test_a_repeat_is_answered_before_routing(fresh: QueryApp, dataset: DataSet) -> None:
    params = {**unique_window(dataset), "bucket": "5m"}
    first = await fresh.http.get(HISTOGRAM, params=params)
    assert first.headers["x-cache"] == "miss"
    await forget_redis(fresh)
    reads = len(fresh.commands.reads)
    again = await fresh.http.get(HISTOGRAM, params=params)
    assert again.status_code == 200
    assert again.headers["x-cache"] == "hit"
    assert again.headers["content-type"] == "application/json"
    assert again.headers["x-request-id"]  # inside the request context, like every answer
    assert again.content == first.content
    assert len(fresh.commands.reads) == reads  # neither MongoDB nor Redis was asked
    # The same question spelled otherwise is not the same bytes: it takes the normal path.
    reordered = dict(reversed(list(params.items())))
    other = await fresh.http.get(HISTOGRAM, params=reordered)
    assert other.headers["x-cache"] == "miss"
    assert other.json()["buckets"] == first.json()["buckets"]


async def test_hot_answers_keep_authentication(fresh: QueryApp, dataset: DataSet) -> None:
    store: ApiKeyStore = fresh.app.state.api_keys
    reader, reader_secret = await store.create("hot-reader", {Scope.READ})
    _, ingest_secret = await store.create("hot-ingest", {Scope.INGEST})
    params = unique_window(dataset)

    async def get(headers: dict[str, str]) -> Any:
        return await fresh.http.get(HISTOGRAM, params=params, headers=headers)

    assert (await get({"X-API-Key": reader_secret})).headers["x-cache"] == "miss"
    assert (await get({"Authorization": f"Bearer {reader_secret}"})).headers["x-cache"] == "hit"
    # The answer is held; a request that may not read it still gets the normal answers.
    fresh.http.headers.pop("X-API-Key")
    assert (await get({})).status_code == 401
    assert (await get({"X-API-Key": "lr_nothing_at_all"})).status_code == 401
    assert (await get({"X-API-Key": ingest_secret})).status_code == 403
    # Revoked on this instance: refused at once, not after the key cache's TTL.
    assert await store.revoke(reader.id)
    assert (await get({"X-API-Key": reader_secret})).status_code == 401


@pytest.mark.parametrize(
    "overrides",
    [
        {"cache_ttl_seconds": 0.3, "hot_answer_seconds": 30},  # the Redis entry expires first
        {"cache_ttl_seconds": 60, "hot_answer_seconds": 0.3},  # the hot copy expires first
    ],
)
async def test_a_hot_answer_never_outlives_its_limits(
    dataset: DataSet, overrides: dict[str, float]
) -> None:
    async for app in start_query_app(query_settings(dataset.database, **overrides)):
        params = unique_window(dataset)
        assert (await app.http.get(HISTOGRAM, params=params)).headers["x-cache"] == "miss"
        await forget_redis(app)
        await asyncio.sleep(0.5)
        assert (await app.http.get(HISTOGRAM, params=params)).headers["x-cache"] == "miss"


async def test_hot_answers_off(dataset: DataSet) -> None:
    async for app in start_query_app(query_settings(dataset.database, hot_answer_seconds=0)):
        params = unique_window(dataset)
        assert (await app.http.get(HISTOGRAM, params=params)).headers["x-cache"] == "miss"
        await forget_redis(app)
        assert (await app.http.get(HISTOGRAM, params=params)).headers["x-cache"] == "miss"
