"""``logriver-keys``: create, list and revoke API keys directly in PostgreSQL.

Usable before any service runs, which is how the first production key is made.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from logriver_common.auth import MIGRATIONS, ApiKeyStore, Scope
from logriver_common.clients import postgres_pool
from logriver_common.migrations import apply_migrations
from logriver_common.settings import PostgresSettings


async def _run(args: argparse.Namespace) -> int:
    pool = await postgres_pool(PostgresSettings())
    try:
        await apply_migrations(pool, "common", MIGRATIONS)
        store = ApiKeyStore(pool)
        if args.command == "create":
            try:
                scopes = {Scope(s.strip()) for s in args.scopes.split(",") if s.strip()}
            except ValueError:
                print(f"scopes must be among: {', '.join(Scope)}", file=sys.stderr)
                return 2
            key, plaintext = await store.create(args.name, scopes)
            print(f"created key {key.id} ({key.name}) scopes={','.join(sorted(key.scopes))}")
            print(f"API key (shown once): {plaintext}")
        elif args.command == "list":
            for key in await store.list():
                state = "active" if key.active else f"revoked {key.revoked_at:%Y-%m-%d}"
                print(
                    f"{key.id}\tlr_{key.prefix}_…\t{','.join(sorted(key.scopes))}\t{state}\t{key.name}"
                )
        elif not await store.revoke(args.id):
            print(f"no active key with id {args.id}", file=sys.stderr)
            return 1
        else:
            print(f"revoked {args.id}")
        return 0
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="logriver-keys", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", default="ingest", help="comma-separated: ingest,read,admin")
    sub.add_parser("list", help="list keys (never their secrets)")
    revoke = sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id")
    sys.exit(asyncio.run(_run(parser.parse_args())))


if __name__ == "__main__":
    main()
