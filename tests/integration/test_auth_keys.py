"""API keys in the real PostgreSQL: hashing, scopes, revocation, and the FastAPI dependency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI

from logriver_common.auth import DEV_KEY, ApiKey, ApiKeyStore, Scope, hash_key, require_scope
from logriver_common.migrations import Migration, apply_migrations
from logriver_common.web.errors import install_error_handlers
from tests.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a private schema: revoking the dev key here cannot affect running services."""
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=8)
    assert pool is not None
    yield pool
    await pool.close()


async def test_concurrent_startups_apply_each_migration_once(
    pool: asyncpg.Pool, unique: str
) -> None:
    table = "t_migrations"
    migrations = [
        Migration(1, "create", f"CREATE TABLE {table} (v int)"),
        Migration(2, "seed", f"INSERT INTO {table} VALUES (1)"),
    ]
    results = await asyncio.gather(
        *(apply_migrations(pool, f"test-{unique}", migrations) for _ in range(5))
    )
    assert sorted(map(tuple, results)) == [(), (), (), (), (1, 2)]
    assert await pool.fetchval(f"SELECT count(*) FROM {table}") == 1


async def test_keys_are_stored_hashed_and_revocable(pool: asyncpg.Pool, unique: str) -> None:
    store = ApiKeyStore(pool)
    await store.prepare(local_mode=True)
    key, plaintext = await store.create(f"test-{unique}", {Scope.INGEST})
    row = await pool.fetchrow("SELECT * FROM api_keys WHERE id = $1", key.id)
    assert row is not None
    assert row["key_hash"] == hash_key(plaintext)
    assert plaintext not in str(dict(row))
    assert plaintext.startswith(f"lr_{key.prefix}_")

    found = await store.lookup(plaintext)
    assert found is not None
    assert found.scopes == {Scope.INGEST}
    assert await store.lookup(plaintext + "x") is None
    assert await store.revoke(key.id)
    assert await store.lookup(plaintext) is None
    assert not await store.revoke(key.id)


async def test_dependency_answers_401_and_403(pool: asyncpg.Pool, unique: str) -> None:
    store = ApiKeyStore(pool)
    await store.prepare(local_mode=True)
    _, ingest_only = await store.create(f"test-{unique}", {Scope.INGEST})

    app = FastAPI()
    install_error_handlers(app)
    app.state.api_keys = store

    @app.get("/read")
    async def read(key: ApiKey = Depends(require_scope(Scope.READ))) -> dict[str, str]:  # noqa: B008
        return {"key": key.id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        missing = await http.get("/read")
        assert missing.status_code == 401
        assert missing.json()["error"] == "unauthorized"
        assert missing.headers["www-authenticate"] == "Bearer"
        assert (await http.get("/read", headers={"X-API-Key": "lr_nope_nope"})).status_code == 401
        huge = await http.get("/read", headers={"Authorization": "Bearer " + "x" * 10_000})
        assert huge.status_code == 401
        wrong_scope = await http.get("/read", headers={"Authorization": f"Bearer {ingest_only}"})
        assert wrong_scope.status_code == 403
        assert "read" in wrong_scope.json()["detail"]
        ok = await http.get("/read", headers={"Authorization": f"Bearer {DEV_KEY}"})
        assert ok.status_code == 200
        assert ok.json() == {"key": "dev"}


async def test_production_revokes_the_dev_key(pool: asyncpg.Pool, unique: str) -> None:
    store = ApiKeyStore(pool)
    await store.prepare(local_mode=True)
    with pytest.raises(RuntimeError, match="needs at least one API key"):
        await ApiKeyStore(pool).prepare(local_mode=False)
    await store.create(f"test-{unique}", {Scope.ADMIN})
    await store.prepare(local_mode=False)
    assert await store.lookup(DEV_KEY) is None


async def test_an_unreachable_key_store_is_a_503_with_retry_after_not_a_500() -> None:
    """PostgreSQL down and the key not cached (e.g. its cache entry expired mid-outage)."""
    dead = f"postgresql://logriver@127.0.0.1:{free_port()}/logriver"  # nothing listens there
    pool = await asyncpg.create_pool(dead, min_size=0, max_size=1)
    assert pool is not None
    app = FastAPI()
    install_error_handlers(app)
    app.state.api_keys = ApiKeyStore(pool)

    @app.get("/read")
    async def read(key: ApiKey = Depends(require_scope(Scope.READ))) -> dict[str, str]:  # noqa: B008
        return {"key": key.id}

    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            resp = await http.get("/read", headers={"Authorization": f"Bearer {DEV_KEY}"})
        assert resp.status_code == 503
        assert resp.json()["error"] == "unavailable"
        assert resp.headers["Retry-After"] == "2"
    finally:
        await pool.close()
