"""Versioned PostgreSQL migrations, applied at start-up by whichever service starts first.

Each component (``common`` for API keys, ``alerter`` for rules and alerts, ...)
owns an ordered list of migrations. A transaction-scoped advisory lock per
component makes concurrent start-ups apply each migration exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component  text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


async def apply_migrations(
    pool: asyncpg.Pool, component: str, migrations: Sequence[Migration]
) -> list[int]:
    """Apply the component's pending migrations in order; return the versions applied."""
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError(f"{component} migrations must have unique, increasing versions")
    applied: list[int] = []
    async with pool.acquire() as conn, conn.transaction():
        # Serialise concurrent start-ups; the lock is released at commit.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('schema_migrations'))")
        await conn.execute(_BOOTSTRAP)
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", component)
        done = {
            row["version"]
            for row in await conn.fetch(
                "SELECT version FROM schema_migrations WHERE component = $1", component
            )
        }
        for migration in migrations:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)",
                component,
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
    return applied
