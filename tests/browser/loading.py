"""Store test events as the writer does: documents, rollup counts and templates, atomically.

The query service answers counts from the writer's rollups, so events inserted
without them would be invisible to the histogram and the stats endpoints.
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient

from logriver_common.indexes import ensure_log_indexes
from logriver_writer.rollups import TransactionalInsert
from logriver_writer.sink import TransientWriteError
from tests.stack import STACK

ATTEMPTS = 5


async def store(database: str, docs: list[dict[str, Any]]) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
    try:
        logs = client[database]["logs"]
        await ensure_log_indexes(logs)
        insert = TransactionalInsert(logs, docs)
        for attempt in range(ATTEMPTS):
            try:
                await insert.attempt()
            except TransientWriteError:
                if attempt == ATTEMPTS - 1:
                    raise
            if insert.done:
                break
        assert insert.inserted == len(docs), insert.unstorable
    finally:
        await client.close()
