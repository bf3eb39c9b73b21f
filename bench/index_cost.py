"""What each part of the stored shape costs MongoDB: CPU per stored event, side by side.

    uv run python -m bench.index_cost [--events 40000] [--rounds 3]

The same documents (the e2e bench's events, mapped and enriched exactly as the
writer stores them) go into a fresh database per variant, ``insert_many`` with
w=majority from one client in batches of 1,000, and the CPU of the three
``mongod`` processes is read from /proc around each variant:

* **no secondary index**: what the original design paid (``_id`` only);
* **logriver's indexes**: ``LOG_INDEXES`` as the writer creates them;
* **+ the old token index**: the same plus the multikey ``tokens_timestamp_id``
  (and the ``tokens`` array in every document) that whole-word search used
  before the template dictionary;
* **writer's transaction**: logriver's indexes, each batch stored by the writer's
  own ``TransactionalInsert`` (insert + rollups + template counts + dictionary).

Variants alternate within each round; figures are medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from bench.e2e_bench import MONGODS, batch_events, stack_pids
from bench.proc import cpu_seconds
from bench.results import Figure, publish_figures
from logriver_common.decoding import Rejection, decode_event
from logriver_common.documents import event_to_document
from logriver_common.event import EventLimits
from logriver_common.event_rule import admit_object, encode
from logriver_common.indexes import LOG_INDEXES, ensure_log_indexes, words_of
from logriver_writer.rollups import TransactionalInsert, enrich
from tests.stack import STACK

Document = dict[str, Any]
Store = Callable[[AsyncCollection[Document], list[Document]], Awaitable[None]]
TOKEN_INDEX = IndexModel(
    [("tokens", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING)],
    name="tokens_timestamp_id",
)


def writer_documents(count: int) -> list[Document]:
    """``count`` documents as the writer stores them (decoded from the gateway's records)."""
    now = datetime.now(UTC)
    documents: list[Document] = []
    for seed in range(count // 1_000):
        for item in batch_events(seed):
            item["id"] = str(uuid.uuid4())
            item["timestamp"] = now - timedelta(seconds=count - len(documents))
            value = encode(admit_object(item, now=now))
            event = decode_event(value, limits=EventLimits(), max_record_bytes=1 << 20, now=now)
            assert not isinstance(event, Rejection)  # noqa: S101 - the bench's own events
            document = event_to_document(event, now + timedelta(days=7))
            enrich(document)
            documents.append(document)
    return documents


async def plain(collection: AsyncCollection[Document], batch: list[Document]) -> None:
    await collection.insert_many(batch, ordered=False)


async def transactional(collection: AsyncCollection[Document], batch: list[Document]) -> None:
    insert = TransactionalInsert(collection, batch)
    while not insert.done:
        await insert.attempt()


def mongod_cpu() -> float:
    pids = stack_pids()
    return sum(cpu_seconds(pids[name]) for name in MONGODS if name in pids)


async def variant(
    client: AsyncMongoClient[Document],
    documents: list[Document],
    indexes: list[IndexModel] | None,
    store: Store,
    *,
    tokens: bool = False,
) -> tuple[float, float, float]:
    """(events/s, mongod CPU us per event, index bytes per event) of one variant."""
    database = client[f"bench_idx_{uuid.uuid4().hex[:8]}"]
    logs = database["logs"]
    try:
        if indexes is None:
            await ensure_log_indexes(logs)  # what the writer creates, rollups included
        elif indexes:
            await logs.create_indexes(indexes)
        copies = [{**doc, "_id": str(uuid.uuid4())} for doc in documents]
        if tokens:
            for doc in copies:
                doc["tokens"] = words_of(doc["message"])[:64]
        started, cpu = time.perf_counter(), mongod_cpu()
        for start in range(0, len(copies), 1_000):
            await store(logs, copies[start : start + 1_000])
        seconds, used = time.perf_counter() - started, mongod_cpu() - cpu
        stats = await database.command("collStats", "logs")
        count = len(copies)
        return count / seconds, used / count * 1e6, stats["totalIndexSize"] / count
    finally:
        await client.drop_database(database.name)


async def main(args: argparse.Namespace) -> None:
    documents = writer_documents(args.events)
    client: AsyncMongoClient[Document] = AsyncMongoClient(STACK.mongo_uri, w="majority")
    variants: dict[str, tuple[list[IndexModel] | None, Store, bool]] = {
        "no secondary index": ([], plain, False),
        "logriver's indexes": (list(LOG_INDEXES), plain, False),
        "+ the old token index": ([*LOG_INDEXES, TOKEN_INDEX], plain, True),
        "writer's transaction (indexes, rollups, dictionary)": (None, transactional, False),
    }
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    try:
        for _ in range(args.rounds):
            for name, (indexes, store, tokens) in variants.items():
                results[name].append(
                    await variant(client, documents, indexes, store, tokens=tokens)
                )
    finally:
        await client.close()
    print(f"{args.events:,} events per variant, median of {args.rounds} rounds, w=majority")
    print(f"  {'variant':<52} {'events/s':>9} {'mongod us/event':>16} {'index B/event':>14}")
    figures: dict[str, Figure] = {}
    for name, rows in results.items():
        rate, cpu, index = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"  {name:<52} {rate:>9,.0f} {cpu:>16.0f} {index:>14.0f}")
        figures[f"{name}: events/s"] = round(rate)
        figures[f"{name}: mongod CPU us per event"] = round(cpu, 1)
        figures[f"{name}: index bytes per event"] = round(index)
    publish_figures("index_cost", figures, notes=f"{args.events} events per variant")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
