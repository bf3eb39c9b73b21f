"""Ingest gateway throughput versus a raw aiokafka producer, in the same run.

    uv run python -m bench.ingest_bench [--rounds 5] [--seconds 4] [--concurrency 4] [--workers 1]

Both sides send 1,000-event batches of about 300-byte events to the same broker
(the local stack's, on a throw-away topic) with the same producer settings
(acks=all, zstd, as the gateway). The gateway runs as its own process (``--workers``
uvicorn workers, exactly as ``python -m logriver_ingest``) and does everything it does in
production: auth, rate limit (Redis), parsing, validation, redaction, tracing.
"raw send()" is the usual producer API, one ``send()`` per record, which is what
a service writing to Kafka directly would do; "raw send_batch()" builds record
batches by hand, the fastest the client library can go, shown for reference.
Rounds alternate the sides; the table shows medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from bench.results import Figure, publish_figures
from logriver_common.auth import ApiKeyStore, Scope
from tests.processes import free_port

KAFKA = os.environ.get("LOGRIVER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
POSTGRES = os.environ.get(
    "LOGRIVER_POSTGRES_DSN", "postgresql://logriver:logriver@127.0.0.1:5432/logriver"
)
BATCH = 1_000
SERVICES = [f"bench-svc-{i}" for i in range(12)]
LEVELS = ["DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR"]


def make_events(seed: int) -> list[dict[str, object]]:
    """1,000 events of about 300 bytes as JSON (the gateway adds id and received_at)."""
    events: list[dict[str, object]] = []
    # Now, not a fixed date: retention refuses events older than it at the door.
    stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    for i in range(BATCH):
        n = seed * BATCH + i
        events.append(
            {
                "timestamp": stamp,
                "level": LEVELS[n % len(LEVELS)],
                "service": SERVICES[n % len(SERVICES)],
                "message": f"order {n} checked out: 3 items, total 42.10 EUR, took {n % 997} ms",
                "host": f"web-{n % 7}",
                "env": "prod",
                "trace_id": f"{n + 1:032x}",
                "metadata": {"order": n, "route": "/api/v1/checkout", "region": "eu-west-1"},
            }
        )
    return events


@dataclass
class Result:
    events_per_s: float
    p50_ms: float
    p99_ms: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def drive(
    send_one: Callable[[int], Awaitable[int]], seconds: float, concurrency: int
) -> Result:
    """``concurrency`` loops each sending batches back to back for ``seconds``."""
    latencies: list[float] = []
    accepted = 0
    stop_at = time.perf_counter() + seconds

    async def loop(worker: int) -> None:
        nonlocal accepted
        i = worker
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            accepted += await send_one(i)
            latencies.append(time.perf_counter() - started)
            i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Result(
        accepted / elapsed, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    )


class Gateway:
    """The ingest service as a subprocess on a free port, pointed at the bench topic."""

    def __init__(self, topic: str, workers: int) -> None:
        self.port = free_port()
        self.log = Path(tempfile.gettempdir()) / f"ingest-bench-{self.port}.log"
        env = {
            **os.environ,
            "LOGRIVER_INGEST_PORT": str(self.port),
            "LOGRIVER_INGEST_GRPC_PORT": "0",  # 4319 is the stack gateway's
            "LOGRIVER_KAFKA_TOPIC": topic,
            "LOGRIVER_LOG_LEVEL": "WARNING",
            "LOGRIVER_INGEST_WORKERS": str(workers),
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "logriver_ingest"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SystemExit(f"gateway exited; see {self.log}")
                try:
                    if (await http.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise SystemExit(f"gateway not ready; see {self.log}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def bench_gateway(
    gateway: Gateway, key: str, bodies: list[bytes], seconds: float, concurrency: int
) -> Result:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gateway.port}",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        limits=limits,
        timeout=30,
    ) as http:

        async def send_one(i: int) -> int:
            response = await http.post("/v1/logs", content=bodies[i % len(bodies)])
            if response.status_code != 202:
                raise SystemExit(f"gateway answered {response.status_code}: {response.text}")
            return int(orjson.loads(response.content)["accepted"])

        return await drive(send_one, seconds, concurrency)


def normalised_records(events: list[dict[str, object]]) -> list[tuple[bytes, bytes]]:
    """What the gateway publishes for these events: same keys, same value sizes."""
    from logriver_common.event import LogEvent, utcnow

    records = []
    for event in events:
        normalised = LogEvent.model_validate({**event, "received_at": utcnow()})
        records.append((normalised.service.encode(), normalised.to_json()))
    return records


async def bench_raw(
    producer: AIOKafkaProducer,
    topic: str,
    batches: list[list[tuple[bytes, bytes]]],
    seconds: float,
    concurrency: int,
) -> Result:
    async def send_one(i: int) -> int:
        records = batches[i % len(batches)]
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
        return len(records)

    return await drive(send_one, seconds, concurrency)


async def bench_raw_batches(
    producer: AIOKafkaProducer,
    topic: str,
    batches: list[list[tuple[bytes, bytes]]],
    seconds: float,
    concurrency: int,
) -> Result:
    partitions = sorted(await producer.partitions_for(topic))
    partitioner = DefaultPartitioner()
    # One waiter per partition in add_batch at a time (see the gateway's publisher.py).
    locks = {p: asyncio.Lock() for p in partitions}

    async def send_one(i: int) -> int:
        records = batches[i % len(batches)]
        builders: dict[int, BatchBuilder] = {}
        for key, value in records:
            partition = partitioner(key, partitions, partitions)
            builder = builders.get(partition)
            if builder is None:
                builder = builders[partition] = producer.create_batch()
            if builder.append(timestamp=None, key=key, value=value, headers=[]) is None:
                raise SystemExit("raise --batch-size: a request did not fit one batch")
        futures = []
        for partition, builder in builders.items():
            builder.close()
            async with locks[partition]:
                futures.append(await producer.send_batch(builder, topic, partition=partition))
        await asyncio.gather(*futures)
        return len(records)

    return await drive(send_one, seconds, concurrency)


async def main(rounds: int, seconds: float, concurrency: int, workers: int) -> None:
    topic = f"bench.ingest.{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    pool = await asyncpg.create_pool(POSTGRES, min_size=1, max_size=2)
    assert pool is not None  # noqa: S101
    store = ApiKeyStore(pool)
    await store.prepare(local_mode=True)
    key, plaintext = await store.create(f"bench-{topic}", {Scope.INGEST})
    gateway = Gateway(topic, workers)
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA,
        acks="all",
        enable_idempotence=False,  # as the gateway's producer (logriver_common.clients)
        compression_type="zstd",
        linger_ms=5,
        max_batch_size=512 * 1024,
    )
    try:
        await gateway.wait_ready()
        await producer.start()
        event_sets = [make_events(seed) for seed in range(4)]
        bodies = [orjson.dumps(events) for events in event_sets]
        batches = [normalised_records(events) for events in event_sets]
        value_bytes = statistics.mean(len(v) for _, v in batches[0])
        request_bytes = statistics.mean(len(orjson.dumps(e)) for e in event_sets[0])
        print(
            f"topic {topic}; {BATCH} events per batch; events {request_bytes:.0f} B as sent, "
            f"{value_bytes:.0f} B as published; {concurrency} concurrent senders; "
            f"{rounds} rounds of {seconds:.0f}s; gateway: {workers} uvicorn worker(s)"
        )
        # Warm-up: connections, metadata, the gateway's caches.
        await bench_gateway(gateway, plaintext, bodies, 1.0, concurrency)
        await bench_raw(producer, topic, batches, 1.0, concurrency)
        results: dict[str, list[Result]] = {"gateway": [], "raw send()": [], "raw send_batch()": []}
        for number in range(rounds):
            results["gateway"].append(
                await bench_gateway(gateway, plaintext, bodies, seconds, concurrency)
            )
            results["raw send()"].append(
                await bench_raw(producer, topic, batches, seconds, concurrency)
            )
            results["raw send_batch()"].append(
                await bench_raw_batches(producer, topic, batches, seconds, concurrency)
            )
            line = "  ".join(f"{k} {v[-1].events_per_s:,.0f}/s" for k, v in results.items())
            print(f"round {number + 1}: {line}")
        print_table(results, workers)
    finally:
        await producer.stop()
        gateway.stop()
        await store.revoke(key.id)
        await pool.close()
        await admin.delete_topics([topic])
        await admin.close()


def print_table(results: dict[str, list[Result]], workers: int) -> None:
    medians = {
        name: Result(
            statistics.median(r.events_per_s for r in rs),
            statistics.median(r.p50_ms for r in rs),
            statistics.median(r.p99_ms for r in rs),
        )
        for name, rs in results.items()
    }
    gateway = medians["gateway"].events_per_s
    print()
    print(f"{'path':<18} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'gateway/this':>13}")
    for name, m in medians.items():
        ratio = f"{gateway / m.events_per_s:.0%}"
        print(f"{name:<18} {m.events_per_s:>10,.0f} {m.p50_ms:>8.1f} {m.p99_ms:>8.1f} {ratio:>13}")
    raw = medians["raw send()"].events_per_s
    verdict = "met" if gateway >= 0.6 * raw and gateway >= 30_000 else "NOT met"
    print(f"\ntarget (>= 60% of raw send() and >= 30,000 events/s): {verdict}")
    figures: dict[str, Figure] = {
        f"{name} {what}": round(value, 1)
        for name, m in medians.items()
        for what, value in (
            ("events/s", m.events_per_s),
            ("p50 ms", m.p50_ms),
            ("p99 ms", m.p99_ms),
        )
    }
    figures["gateway / raw send()"] = f"{gateway / raw:.0%}"
    publish_figures(
        "ingest",
        figures,
        notes=f"gateway with {workers} worker(s); "
        f"target >= 60% of raw send() and >= 30,000 events/s: {verdict}",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="LOGRIVER_INGEST_WORKERS")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.seconds, args.concurrency, args.workers))
