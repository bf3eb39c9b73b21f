"""Writer throughput versus a raw ``insert_many`` loop, side by side in one run; and latency.

    uv run python -m bench.writer_bench [--events 100000] [--rounds 3] [--batch 5000]
                                        [--rate 5000] [--seconds 10]

Throughput: a unique topic (6 partitions, like logs.v1) is pre-filled once.
Each round then runs both sides, each into its own fresh database with the
writer's indexes:

* **writer**: ``python -m logriver_writer`` as its own process (a new consumer
  group each round, so it reads the whole topic again), doing everything it
  does in production: fetch, validate every record, retention, tracing, bulk
  insert, DLQ checks, offset commits. Its rate is read from MongoDB's count of
  the stored events between the first and the last write, so process start-up
  and the group join are not counted.
* **raw**: this process calls ``insert_many(ordered=False)`` with w=majority in
  a loop over the *same documents* (built by the shared mapping from the same
  events) in batches of the same size: the ceiling for one client.

Latency: a second topic is produced to at a steady ``--rate`` with
``received_at`` = now in each event, and a change stream reports each insert's
commit ``wallTime``; latency is ``wallTime - received_at`` (one machine, one clock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient
from pymongo.write_concern import WriteConcern

from bench.proc import cpu_seconds
from bench.results import publish_figures
from logriver_common import clients
from logriver_common.documents import event_to_document
from logriver_common.event import LogEvent
from logriver_common.indexes import ensure_log_indexes
from logriver_common.retention import RetentionPolicy
from logriver_common.settings import KafkaSettings
from tests.processes import ServiceProcess

KAFKA = os.environ.get("LOGRIVER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
MONGO = os.environ.get(
    "LOGRIVER_MONGO_URI",
    "mongodb://127.0.0.1:27017,127.0.0.1:27018,127.0.0.1:27019/?replicaSet=rs0",
)
SERVICES = [f"bench-svc-{i}" for i in range(12)]
LEVELS = ["DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR"]
Client = AsyncMongoClient[dict[str, Any]]


def event_record(n: int, run: str, received_at: datetime) -> dict[str, Any]:
    """About 300 bytes of JSON, the shape of a typical structured log line."""
    return {
        "id": f"{run}-{n}",
        "timestamp": received_at.isoformat(),
        "received_at": received_at.isoformat(),
        "level": LEVELS[n % len(LEVELS)],
        "service": SERVICES[n % len(SERVICES)],
        "message": f"GET /api/orders/{n} completed with status 200 in {n % 900} ms",
        "host": f"web-{n % 8}",
        "env": "prod",
        "trace_id": f"{n + 2:032x}",  # n = -1 is the warm-up event; never all zeros
        "metadata": {"route": "/api/orders/{id}", "status": 200, "bytes": n % 5000},
    }


@dataclass
class Round:
    raw: float
    writer: float
    writer_cpu_us: float  # the writer process's CPU per stored event, from /proc


@contextlib.asynccontextmanager
async def topic(name: str) -> AsyncIterator[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 6, 1), NewTopic(f"{name}.dlq", 1, 1)])
        yield name
    finally:
        await admin.delete_topics([name, f"{name}.dlq"])
        await admin.close()


async def prefill(name: str, values: Sequence[bytes], keys: Sequence[bytes]) -> None:
    producer = clients.kafka_producer(
        KafkaSettings(bootstrap_servers=KAFKA), linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        for start in range(0, len(values), 10_000):
            acks = [
                await producer.send(name, value, key=key)
                for value, key in zip(
                    values[start : start + 10_000], keys[start : start + 10_000], strict=True
                )
            ]
            await asyncio.gather(*acks)
    finally:
        await producer.stop()


async def raw_round(
    client: Client, database: str, documents: list[dict[str, Any]], batch: int
) -> float:
    collection = client[database]["logs"]
    await ensure_log_indexes(collection)
    majority = collection.with_options(write_concern=WriteConcern(w="majority"))
    started = time.perf_counter()
    for start in range(0, len(documents), batch):
        # insert_many adds _id only when missing; ours have one, so the dicts are reusable.
        await majority.insert_many(documents[start : start + batch], ordered=False)
    return len(documents) / (time.perf_counter() - started)


def writer_env(name: str, database: str, batch: int, extra: Sequence[str] = ()) -> dict[str, str]:
    return {
        "LOGRIVER_KAFKA_TOPIC": name,
        "LOGRIVER_KAFKA_DLQ_TOPIC": f"{name}.dlq",
        "LOGRIVER_MONGO_DATABASE": database,
        "LOGRIVER_WRITER_GROUP_ID": f"bench-{database}",
        "LOGRIVER_WRITER_BATCH_MAX_EVENTS": str(batch),
        "LOGRIVER_WRITER_SESSION_TIMEOUT_MS": "6000",
        **dict(setting.split("=", 1) for setting in extra),
    }


async def writer_round(
    client: Client, name: str, database: str, args: argparse.Namespace, tag: str
) -> tuple[float, float]:
    """The writer's events/s and CPU µs per stored event, both from its first write on.

    Progress is MongoDB's count of the stored events (the collection's own count: no
    scan; a real count confirms the end), not the writer's ``/metrics``: each scrape cost
    the writer about 3 ms of CPU, 5% of its samples at four a second, which Prometheus's
    15 s interval never does."""
    env = writer_env(name, database, args.batch, args.set)
    process = ServiceProcess("writer", env, tag=tag).start()
    logs = client[database]["logs"]
    try:
        process.wait_ready()
        if process.proc is None:
            raise RuntimeError("the writer did not start")
        pid = process.proc.pid
        first: tuple[float, float, float] | None = None
        while True:
            count = await logs.estimated_document_count()
            now, cpu = time.perf_counter(), cpu_seconds(pid)
            if first is None and count > 0:
                first = (count, now, cpu)
            # The collection's own count includes inserts of a transaction that has not
            # committed yet: confirm with a real count before the writer is killed (a
            # kill aborts that transaction, and its events then stay unstored).
            if count >= args.events and await logs.count_documents({}) >= args.events:
                now, cpu = time.perf_counter(), cpu_seconds(pid)
                break
            await asyncio.sleep(0.25)  # polling MongoDB: there is no event to wait on
        if first is None or now == first[1]:
            raise RuntimeError("the writer finished between two samples; use more --events")
        stored = args.events - first[0]
        return stored / (now - first[1]), (cpu - first[2]) * 1e6 / stored
    finally:
        process.kill()


async def throughput(args: argparse.Namespace, client: Client, run: str) -> list[Round]:
    now = datetime.now(UTC)
    records = [event_record(n, run, now) for n in range(args.events)]
    values = [orjson.dumps(r) for r in records]
    keys = [str(r["service"]).encode() for r in records]
    policy = RetentionPolicy()
    documents = []
    for record in records:
        event = LogEvent.model_validate(record)
        documents.append(
            event_to_document(event, policy.expire_at(event.service, event.level, event.timestamp))
        )
    rounds = []
    async with topic(f"bench.writer.{run}") as name:
        await prefill(name, values, keys)
        for i in range(args.rounds):
            raw_db, writer_db = f"bench_raw_{run}_{i}", f"bench_writer_{run}_{i}"
            try:
                raw = await raw_round(client, raw_db, documents, args.batch)
                writer, cpu_us = await writer_round(client, name, writer_db, args, f"{run}-{i}")
                stored = await client[writer_db]["logs"].count_documents({})
                if stored != args.events:
                    raise RuntimeError(f"writer stored {stored} of {args.events} events")
            finally:
                await client.drop_database(raw_db)
                await client.drop_database(writer_db)
            rounds.append(Round(raw=raw, writer=writer, writer_cpu_us=cpu_us))
            print(
                f"  round {i + 1}: raw {raw:>9,.0f} ev/s   writer {writer:>9,.0f} ev/s"
                f"   writer CPU {cpu_us:.1f} µs/event",
                flush=True,
            )
    return rounds


async def latency(args: argparse.Namespace, client: Client, run: str) -> list[float]:
    database = f"bench_latency_{run}"
    async with topic(f"bench.latency.{run}") as name:
        env = writer_env(name, database, args.batch, args.set)
        process = ServiceProcess("writer", env, tag=f"{run}-lat")
        producer = clients.kafka_producer(KafkaSettings(bootstrap_servers=KAFKA))
        await producer.start()
        try:
            process.start().wait_ready()
            collection = client[database]["logs"]
            # Warm up: the group has joined and the writer stores once this event is there.
            warmup = orjson.dumps(event_record(-1, f"{run}-warmup", datetime.now(UTC)))
            await producer.send_and_wait(name, warmup, key=b"warmup")
            await wait_for_first_document(collection)

            total = args.rate * args.seconds
            latencies: list[float] = []
            pipeline: list[dict[str, Any]] = [
                {"$match": {"operationType": "insert"}},
                {"$project": {"wallTime": 1, "fullDocument.received_at": 1}},
            ]
            async with await collection.watch(pipeline) as stream:

                async def collect() -> None:
                    async for change in stream:
                        received = change["fullDocument"]["received_at"]
                        stored = change.get("wallTime") or datetime.now(UTC)
                        latencies.append((stored - received).total_seconds() * 1000)
                        if len(latencies) >= total:
                            return

                collector = asyncio.create_task(collect())
                await produce_steadily(producer, name, run, args.rate, args.seconds)
                await asyncio.wait_for(collector, timeout=60)
            return latencies
        finally:
            await producer.stop()
            process.kill()
            await client.drop_database(database)


async def produce_steadily(producer: Any, name: str, run: str, rate: int, seconds: int) -> None:
    """``rate`` events/s in 10 ms slots, each event stamped with received_at = now."""
    per_slot = rate // 100
    started = time.perf_counter()
    acks = []
    for slot in range(seconds * 100):
        now = datetime.now(UTC)
        for i in range(per_slot):
            n = slot * per_slot + i
            record = event_record(n, f"{run}-lat", now)
            acks.append(
                await producer.send(name, orjson.dumps(record), key=record["service"].encode())
            )
        delay = started + (slot + 1) / 100 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the load, not waiting for a condition
    await asyncio.gather(*acks)


async def wait_for_first_document(collection: Any) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if await collection.count_documents({}) > 0:
            return
        await asyncio.sleep(0.05)  # polling MongoDB: there is no event to wait on
    raise RuntimeError("the writer stored nothing within 60 s")


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * p / 100), len(ordered) - 1)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="writer environment"
    )
    args = parser.parse_args()
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # show each round as it finishes
    run = uuid.uuid4().hex[:8]
    client: Client = AsyncMongoClient(MONGO, tz_aware=True)
    try:
        print(
            f"writer vs raw insert_many: {args.events:,} events, batch {args.batch:,}, "
            f"w=majority, {args.rounds} rounds (rs0, 3 members)"
        )
        rounds = await throughput(args, client, run)
        print(f"latency: {args.rate:,} events/s for {args.seconds} s ...", flush=True)
        lat = await latency(args, client, run)
    finally:
        await client.close()

    raw = statistics.median(r.raw for r in rounds)
    writer = statistics.median(r.writer for r in rounds)
    ratio = writer / raw
    cpu_us = statistics.median(r.writer_cpu_us for r in rounds)
    print()
    print("| measure                              |        value |")
    print("|--------------------------------------|-------------:|")
    print(f"| raw insert_many, median              | {raw:>8,.0f} ev/s |")
    print(f"| writer (Kafka → MongoDB), median      | {writer:>8,.0f} ev/s |")
    print(f"| writer / raw                         | {ratio:>11.0%} |")
    print(f"| writer CPU per stored event, median  | {cpu_us:>8.1f} µs |")
    print(f"| ingest-to-stored p50 @ {args.rate:,} ev/s     | {percentile(lat, 50):>9.0f} ms |")
    print(f"| ingest-to-stored p99 @ {args.rate:,} ev/s     | {percentile(lat, 99):>9.0f} ms |")
    print(f"| ingest-to-stored max ({len(lat):,} events) | {max(lat):>9.0f} ms |")
    print()
    verdict = "meets" if ratio >= 0.8 else "MISSES"
    print(f"target writer >= 80% of raw: {verdict} ({ratio:.0%})")
    publish_figures(
        "writer",
        {
            "raw insert_many events/s": round(raw),
            "writer events/s": round(writer),
            "writer / raw": f"{ratio:.0%}",
            "writer CPU µs per stored event": round(cpu_us, 1),
            f"ingest-to-stored p50 ms @ {args.rate}/s": round(percentile(lat, 50)),
            f"ingest-to-stored p99 ms @ {args.rate}/s": round(percentile(lat, 99)),
        },
        notes=f"batch {args.batch}, w=majority, {args.rounds} rounds; target >= 80%: {verdict}",
    )


if __name__ == "__main__":
    asyncio.run(main())
