"""API keys: hashed in PostgreSQL, scoped, cached for at most 5 s, checked by a FastAPI dependency.

A key looks like ``lr_<8-char prefix>_<secret>``. Only a SHA-256 of the whole
key is stored. A fast hash is the right tool here: the secret is 256 random
bits, so there is nothing to brute-force, and a per-request bcrypt would cost
more than the rest of the request. The prefix is stored in clear so people can
tell their keys apart in listings.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg
from fastapi import Request

from logriver_common.clients import POSTGRES_UNAVAILABLE
from logriver_common.migrations import Migration, apply_migrations
from logriver_common.web.errors import ApiError

log = logging.getLogger(__name__)


class Scope(StrEnum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


# The development key exists only in local mode (see ApiKeyStore.prepare); it is
# printed by `make up` and in the README, so it must never work in production.
DEV_KEY = "lr_devlocal_logriver-local-development-key-not-secret"
DEV_KEY_NAME = "local development key"

MIGRATIONS = [
    Migration(
        1,
        "api keys",
        """
        CREATE TABLE api_keys (
            id          text        PRIMARY KEY,
            name        text        NOT NULL,
            prefix      text        NOT NULL,
            key_hash    text        NOT NULL UNIQUE,
            scopes      text[]      NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            revoked_at  timestamptz
        );
        """,
    ),
]


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    scopes: frozenset[Scope]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _row_to_key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=frozenset(Scope(s) for s in row["scopes"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


# No key is trusted from a cache for longer than this: a revocation takes effect
# everywhere within it, even on instances that did not perform the revocation.
MAX_CACHE_TTL_S = 5.0


class ApiKeyStore:
    """Keys in PostgreSQL with a small TTL cache in front (positive and negative).

    The cache saves a PostgreSQL round trip per request; its TTL (at most
    :data:`MAX_CACHE_TTL_S`) is the longest a revoked key keeps working on an
    instance that did not revoke it. :meth:`active_ids` never reads the cache:
    it is how long-lived streams recheck their keys.
    """

    def __init__(
        self, pool: asyncpg.Pool, *, cache_ttl_s: float = 2.0, cache_size: int = 10_000
    ) -> None:
        if not 0 <= cache_ttl_s <= MAX_CACHE_TTL_S:
            raise ValueError(f"cache_ttl_s must be between 0 and {MAX_CACHE_TTL_S} seconds")
        self._pool = pool
        self._ttl = cache_ttl_s
        self._size = cache_size
        self._cache: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()
        self._by_id: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()

    async def prepare(self, *, local_mode: bool) -> None:
        """Apply migrations; in local mode make sure the development key exists.

        In production the development key is revoked, and start-up fails when no
        active key exists: a gateway nobody can authenticate to is a misconfiguration.
        """
        await apply_migrations(self._pool, "common", MIGRATIONS)
        if local_mode:
            await self._pool.execute(
                """
                INSERT INTO api_keys (id, name, prefix, key_hash, scopes)
                VALUES ('dev', $1, 'devlocal', $2, $3)
                ON CONFLICT (id) DO UPDATE SET revoked_at = NULL, scopes = EXCLUDED.scopes
                """,
                DEV_KEY_NAME,
                hash_key(DEV_KEY),
                [s.value for s in Scope],
            )
            log.warning("local mode: development API key enabled", extra={"api_key": DEV_KEY})
            return
        await self._pool.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE id = 'dev' AND revoked_at IS NULL"
        )
        active = await self._pool.fetchval("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")
        if not active:
            raise RuntimeError(
                "production mode needs at least one API key: "
                "create one with `logriver-keys create --name <name> --scopes ingest,read,admin`"
            )

    async def create(self, name: str, scopes: set[Scope]) -> tuple[ApiKey, str]:
        """Create a key; the plaintext is returned once and never stored."""
        if not scopes:
            raise ValueError("a key needs at least one scope")
        prefix = secrets.token_hex(4)
        plaintext = f"lr_{prefix}_{secrets.token_urlsafe(32)}"
        row = await self._pool.fetchrow(
            """
            INSERT INTO api_keys (id, name, prefix, key_hash, scopes)
            VALUES ($1, $2, $3, $4, $5) RETURNING *
            """,
            secrets.token_hex(8),
            name,
            prefix,
            hash_key(plaintext),
            sorted(s.value for s in scopes),
        )
        assert row is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
        return _row_to_key(row), plaintext

    async def list(self) -> list[ApiKey]:
        rows = await self._pool.fetch("SELECT * FROM api_keys ORDER BY created_at")
        return [_row_to_key(r) for r in rows]

    async def revoke(self, key_id: str) -> bool:
        result = await self._pool.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", key_id
        )
        # Revocation must take effect now on this instance, not after the TTL.
        self._cache.clear()
        self._by_id.clear()
        return bool(result.endswith(" 1"))

    async def lookup(self, plaintext: str) -> ApiKey | None:
        """The active key with this plaintext, or None (unknown or revoked)."""
        digest = hash_key(plaintext)
        cached = self._cached(self._cache, digest)
        if cached is not None:
            return cached[1]
        row = await self._pool.fetchrow(
            "SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", digest
        )
        key = _row_to_key(row) if row is not None else None
        self._remember(self._cache, digest, key)
        return key

    def remembered(self, plaintext: str) -> ApiKey | None:
        """The key, if this store's cache holds it as active now; never asks PostgreSQL.

        For answers served before routing (the query service's hot answers): a key not
        in the cache takes the normal path through :meth:`lookup`."""
        if len(plaintext) > 256:
            return None
        cached = self._cached(self._cache, hash_key(plaintext))
        return cached[1] if cached is not None else None

    async def active_key(self, key_id: str) -> ApiKey | None:
        """The active key with this id, or None: how a stream token's key is checked."""
        cached = self._cached(self._by_id, key_id)
        if cached is not None:
            return cached[1]
        row = await self._pool.fetchrow(
            "SELECT * FROM api_keys WHERE id = $1 AND revoked_at IS NULL", key_id
        )
        key = _row_to_key(row) if row is not None else None
        self._remember(self._by_id, key_id, key)
        return key

    async def active_ids(self, key_ids: Collection[str]) -> set[str]:
        """Which of ``key_ids`` are active now, straight from PostgreSQL (no cache)."""
        if not key_ids:
            return set()
        rows = await self._pool.fetch(
            "SELECT id FROM api_keys WHERE id = ANY($1::text[]) AND revoked_at IS NULL",
            list(key_ids),
        )
        return {row["id"] for row in rows}

    def _cached(
        self, cache: OrderedDict[str, tuple[float, ApiKey | None]], name: str
    ) -> tuple[float, ApiKey | None] | None:
        entry = cache.get(name)
        if entry is None or entry[0] <= time.monotonic():
            return None
        cache.move_to_end(name)
        return entry

    def _remember(
        self, cache: OrderedDict[str, tuple[float, ApiKey | None]], name: str, key: ApiKey | None
    ) -> None:
        if self._ttl <= 0:
            return
        cache[name] = (time.monotonic() + self._ttl, key)
        cache.move_to_end(name)
        if len(cache) > self._size:
            cache.popitem(last=False)


def presented_key(request: Request) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = request.headers.get("x-api-key")
    return api_key.strip() if api_key and api_key.strip() else None


def require_scope(scope: Scope) -> Callable[[Request], Awaitable[ApiKey]]:
    """A FastAPI dependency: 401 without a valid key, 403 without ``scope``.

    The store is read from ``request.app.state.api_keys``.
    """

    async def dependency(request: Request) -> ApiKey:
        plaintext = presented_key(request)
        if plaintext is None:
            raise ApiError(
                401,
                "unauthorized",
                "send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if len(plaintext) > 256:
            raise ApiError(401, "unauthorized", "invalid API key")
        store: ApiKeyStore = request.app.state.api_keys
        try:
            key = await store.lookup(plaintext)
        except POSTGRES_UNAVAILABLE:
            # The key store is down and this key is not cached: a retryable answer, not a 500.
            raise ApiError(
                503,
                "unavailable",
                "API keys cannot be checked right now (the key store is unreachable); retry",
                headers={"Retry-After": "2"},
            ) from None
        if key is None:
            raise ApiError(
                401,
                "unauthorized",
                "invalid or revoked API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if scope not in key.scopes:
            raise ApiError(403, "forbidden", f"this API key lacks the `{scope}` scope")
        request.state.api_key = key
        return key

    return dependency
