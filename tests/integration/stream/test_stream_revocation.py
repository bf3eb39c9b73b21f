"""Revoking a key ends its open streams within 5 s, and its stream tokens stop working.

Keys live in a private PostgreSQL schema that only this test's stream
instance reads, and are revoked through the same key store the admin CLI uses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from logriver_common.auth import ApiKeyStore, Scope
from logriver_common.stream_tokens import StreamTokenSettings, issue_token
from tests.conftest import StartService
from tests.integration.stream.clients import EventProducer, SseReader, WsReader, event
from tests.integration.stream.conftest import Instances, stream_env
from tests.stack import eventually

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

WITHIN = 5.0  # the promise: a revoked key's streams end, and its tokens stop, within 5 s


@pytest.fixture
async def store(postgres_dsn: str) -> AsyncIterator[ApiKeyStore]:
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=4)
    assert pool is not None
    try:
        keys = ApiKeyStore(pool)
        await keys.prepare(local_mode=True)
        yield keys
    finally:
        await pool.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_revoking_a_key_ends_its_streams_and_tokens_within_5s(
    instances: Instances,
    service_process: StartService,
    postgres_dsn: str,
    store: ApiKeyStore,
    run_id: str,
) -> None:
    proc = service_process(
        "stream", {**stream_env(instances.topic), "LOGRIVER_POSTGRES_DSN": postgres_dsn}
    )
    revoked, revoked_plain = await store.create("to-revoke", {Scope.READ})
    _, kept_plain = await store.create("kept", {Scope.READ})
    token, _ = issue_token(StreamTokenSettings(), revoked.id, ["read"])
    ws_url = proc.url.replace("http", "ws") + f"/v1/ws?service={run_id}"
    params = {"service": run_id}
    async with (
        SseReader(proc.url, params, headers=bearer(revoked_plain)) as by_key,
        SseReader(proc.url, {**params, "token": token}, headers={}) as by_token,
        SseReader(proc.url, {**params, "regex": "#\\d+$"}, headers=bearer(revoked_plain)) as rx,
        SseReader(proc.url, params, headers=bearer(kept_plain)) as bystander,
        WsReader(ws_url, headers=bearer(revoked_plain)) as ws,
        EventProducer(instances.topic) as producer,
    ):
        for reader in (by_key, by_token, rx, bystander):
            await reader.wait_open()
        await ws.wait_for("open")
        await producer.send([event(run_id, 1, run=run_id)])
        await by_key.wait_logs(1)
        await bystander.wait_logs(1)

        assert await store.revoke(revoked.id)
        revoked_at = time.monotonic()

        async def all_ended() -> bool:
            return by_key.ended and by_token.ended and rx.ended and ws.closed

        await eventually(all_ended, within=WITHIN, interval=0.05, what="revoked streams ended")
        took = time.monotonic() - revoked_at
        log.info("revoked key's streams ended %.2f s after the revocation", took)
        assert took < WITHIN
        for reader in (by_key, by_token, rx):
            assert reader.errors[-1]["error"] == "key_revoked", reader.errors
        assert ws.close_code == 4401
        assert ws.close_reason is not None
        assert ws.close_reason.startswith("key_revoked")
        assert ws.of_type("error")[-1]["error"] == "key_revoked"

        # The other key's stream goes on.
        assert not bystander.ended
        await producer.send([event(run_id, 2, run=run_id)])
        await bystander.wait_logs(2)

    # The key and the token issued before the revocation open nothing any more
    # (the service may trust its cache for at most a few seconds).
    async with httpx.AsyncClient(base_url=proc.url) as client:

        async def refused() -> bool:
            by_header = await client.get("/v1/stream", headers=bearer(revoked_plain))
            by_token = await client.get("/v1/stream", params={"token": token})
            return by_header.status_code == 401 and by_token.status_code == 401

        await eventually(refused, within=WITHIN, interval=0.1, what="revoked key refused")
        resp = await client.get("/v1/stream", params={"token": token})
        assert resp.json()["error"] == "unauthorized"
        assert "revoked" in resp.json()["detail"]
    url = proc.url.replace("http", "ws") + f"/v1/ws?token={token}"
    async with WsReader(url, headers={}) as refused_ws:
        await refused_ws.wait_closed()
        assert refused_ws.close_code == 4401


async def test_a_stream_opened_as_the_key_is_revoked_is_still_ended(
    instances: Instances,
    service_process: StartService,
    postgres_dsn: str,
    store: ApiKeyStore,
    run_id: str,
) -> None:
    """Revoke, then open at once (the service's key cache may still say yes): it ends too."""
    proc = service_process(
        "stream", {**stream_env(instances.topic), "LOGRIVER_POSTGRES_DSN": postgres_dsn}
    )
    key, plain = await store.create("racing", {Scope.READ})
    # Warm the service's cache with the key while it is active.
    async with SseReader(proc.url, {"service": run_id}, headers=bearer(plain)) as warm:
        await warm.wait_open()
    assert await store.revoke(key.id)
    revoked_at = time.monotonic()
    async with SseReader(proc.url, {"service": run_id}, headers=bearer(plain)) as late:

        async def refused_or_ended() -> bool:
            return late.ended

        await eventually(refused_or_ended, within=WITHIN, interval=0.05, what="late stream end")
        assert time.monotonic() - revoked_at < WITHIN
        if late.status == 200:
            assert late.errors[-1]["error"] == "key_revoked"
        else:
            assert late.status == 401
