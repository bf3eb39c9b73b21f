"""The whole pipeline under load, and the original design as a baseline, in one run.

    uv run python -m bench.e2e_bench [--seconds 30] [--senders 4] [--rate 5000]

1. Sustained ingest: 1,000-event batches through the gateway from ``--senders``
   concurrent clients while the query service answers searches and histograms and
   the stream service feeds live-tail clients; the rate is acknowledged events
   divided by the time until the last of them is stored in MongoDB.
2. Latency at a steady ``--rate``: ingest → queryable (first seen by a poller on
   the query API, which reads from secondaries) and ingest → live tail (received
   by an SSE client), from the send time each event carries.
3. Baseline: the original design (bench/baseline/app.py, one ``insert_one`` per
   request) with concurrent clients posting single events, on the same machine.

Every service runs as in production (``python -m logriver_<service>``, local mode,
tracing on at a 1% sample) against its own topic and database, so nothing else
on the stack is measured or disturbed. The alerter consumes the topic too, as it
would in a deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

from bench.results import Figure, publish_figures
from logriver_common.auth import DEV_KEY
from tests.processes import ServiceProcess, free_port
from tests.stack import STACK, eventually

AUTH = {"Authorization": f"Bearer {DEV_KEY}"}
# A live tail may be quiet for long stretches: no read timeout, a bounded connect.
STREAMING = httpx.Timeout(10.0, read=None)
SERVICES = [f"e2e-bench-{i}" for i in range(50)]
LEVELS = ["DEBUG", "INFO", "INFO", "INFO", "INFO", "WARNING", "ERROR"]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] if ordered else 0.0


def batch_body(seed: int, size: int = 1_000) -> bytes:
    """``size`` events of about 300 bytes, as a service's logging library would send them."""
    events = []
    for i in range(size):
        n = seed * size + i
        events.append(
            {
                "level": LEVELS[n % len(LEVELS)],
                "service": SERVICES[n % len(SERVICES)],
                "message": f"GET /api/v1/orders/{n} took {n % 97} ms for user {n % 5000}",
                "host": f"web-{n % 8}",
                "env": "bench",
                "metadata": {"route": "/api/v1/orders/{id}", "status": 200, "attempt": n % 3},
            }
        )
    return orjson.dumps(events)


@dataclass
class Pipeline:
    """The services of one bench run, on a private topic, database and schema."""

    topic: str
    database: str
    schema: str
    procs: dict[str, ServiceProcess] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {
            "LOGRIVER_KAFKA_TOPIC": self.topic,
            "LOGRIVER_KAFKA_DLQ_TOPIC": f"{self.topic}.dlq",
            "LOGRIVER_MONGO_DATABASE": self.database,
            "LOGRIVER_POSTGRES_DSN": f"{STACK.postgres_dsn}?options=-csearch_path%3D{self.schema}",
            "LOGRIVER_WRITER_GROUP_ID": f"writer-{self.topic}",
            "LOGRIVER_ALERTER_GROUP_ID": f"alerter-{self.topic}",
            "LOGRIVER_OTEL_SAMPLE_RATIO": "0.01",
            "LOGRIVER_LOG_LEVEL": "WARNING",
        }

    def url(self, name: str) -> str:
        return self.procs[name].url


@contextlib.asynccontextmanager
async def pipeline() -> AsyncIterator[Pipeline]:
    run = uuid.uuid4().hex[:8]
    pipe = Pipeline(topic=f"bench.e2e.{run}", database=f"bench_e2e_{run}", schema=f"bench_{run}")
    admin = AIOKafkaAdminClient(bootstrap_servers=STACK.kafka)
    await admin.start()
    pg = await asyncpg.connect(STACK.postgres_dsn)
    await pg.execute(f'CREATE SCHEMA "{pipe.schema}"')
    await admin.create_topics([NewTopic(pipe.topic, 6, 1), NewTopic(f"{pipe.topic}.dlq", 1, 1)])
    try:
        for name in ("writer", "ingest", "query", "stream", "alerter"):
            pipe.procs[name] = ServiceProcess(name, pipe.env(), tag=f"bench-{run}").start()
        for proc in pipe.procs.values():
            await asyncio.to_thread(proc.wait_ready, 90)
        yield pipe
    finally:
        for proc in pipe.procs.values():
            proc.kill()
        await admin.delete_topics([pipe.topic, f"{pipe.topic}.dlq"])
        await admin.close()
        await pg.execute(f'DROP SCHEMA IF EXISTS "{pipe.schema}" CASCADE')
        await pg.close()
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri)
        await mongo.drop_database(pipe.database)
        await mongo.close()


async def stored(database: str) -> int:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri)
    try:
        return await mongo[database]["logs"].count_documents({})
    finally:
        await mongo.close()


async def query_load(url: str, stop: asyncio.Event, served: list[float]) -> None:
    """A console user: searches a service and redraws the histogram, over and over."""
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as http:
        n = 0
        while not stop.is_set():
            n += 1
            path = "/v1/stats/histogram" if n % 4 == 0 else "/v1/logs"
            params = {"service": SERVICES[n % len(SERVICES)], "since": "15m", "limit": "100"}
            started = time.perf_counter()
            resp = await http.get(path, params=params)
            if resp.status_code == 200:
                served.append(time.perf_counter() - started)


async def tail_load(url: str, service: str, stop: asyncio.Event, counter: list[int]) -> None:
    """A live-tail client following one service."""
    async with (
        httpx.AsyncClient(base_url=url, headers=AUTH, timeout=STREAMING) as http,
        http.stream("GET", "/v1/stream", params={"service": service}) as resp,
    ):
        async for line in resp.aiter_lines():
            if line.startswith("event: log"):
                counter[0] += 1
            if stop.is_set():
                return


async def sustained(pipe: Pipeline, seconds: float, senders: int) -> dict[str, float]:
    bodies = [batch_body(seed) for seed in range(senders * 4)]
    acked = 0
    stop = asyncio.Event()
    served: list[float] = []
    tailed = [0]

    async def sender(index: int) -> None:
        nonlocal acked
        headers = {**AUTH, "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=pipe.url("ingest"), timeout=60) as http:
            n = index
            while not stop.is_set():
                resp = await http.post("/v1/logs", content=bodies[n % len(bodies)], headers=headers)
                if resp.status_code == 202:
                    acked += int(orjson.loads(resp.content)["accepted"])
                n += senders

    background = [
        *(asyncio.create_task(query_load(pipe.url("query"), stop, served)) for _ in range(4)),
        *(
            asyncio.create_task(tail_load(pipe.url("stream"), SERVICES[i], stop, tailed))
            for i in range(20)
        ),
    ]
    started = time.monotonic()
    tasks = [asyncio.create_task(sender(i)) for i in range(senders)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    sent_for = time.monotonic() - started

    async def all_stored() -> bool:
        return await stored(pipe.database) >= acked

    await eventually(all_stored, within=600, what="every acknowledged event stored")
    stored_after = time.monotonic() - started
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    return {
        "acked events": acked,
        "gateway acked events/s": acked / sent_for,
        "end-to-end stored events/s": acked / stored_after,
        "query requests served": len(served),
        "query p99 ms under load": 1000 * percentile(served, 99),
        "live-tail events delivered": tailed[0],
    }


async def latency(pipe: Pipeline, rate: int, seconds: float) -> dict[str, float]:
    """Send ``rate`` events/s with their send time; watch them arrive in query and tail."""
    service = "e2e-bench-latency"
    sent: dict[str, float] = {}
    queryable: dict[str, float] = {}
    tailed: dict[str, float] = {}
    stop = asyncio.Event()
    tick = 0.02
    per_tick = max(1, int(rate * tick))

    async def tail() -> None:
        async with (
            httpx.AsyncClient(base_url=pipe.url("stream"), headers=AUTH, timeout=STREAMING) as http,
            http.stream("GET", "/v1/stream", params={"service": service}) as resp,
        ):
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    event_id = orjson.loads(line[6:])["id"]
                    tailed.setdefault(event_id, time.time())

    async def poll() -> None:
        async with httpx.AsyncClient(base_url=pipe.url("query"), headers=AUTH, timeout=30) as http:
            while not stop.is_set() or len(queryable) < len(sent):
                params = {"service": service, "since": "5m", "limit": "1000"}
                resp = await http.get("/v1/logs", params=params)
                now = time.time()
                for event in resp.json()["events"]:
                    queryable.setdefault(event["id"], now)
                if stop.is_set() and time.time() - last_send > 30:
                    return
                await asyncio.sleep(0.05)

    last_send = time.time()
    tail_task = asyncio.create_task(tail())
    await asyncio.sleep(1)  # the tail subscribes at the live end: let it attach first
    poll_task = asyncio.create_task(poll())
    async with httpx.AsyncClient(base_url=pipe.url("ingest"), headers=AUTH, timeout=30) as http:
        deadline = time.monotonic() + seconds
        next_tick = time.monotonic()
        while time.monotonic() < deadline:
            now = time.time()
            batch = [
                {"id": uuid.uuid4().hex, "service": service, "message": "latency probe"}
                for _ in range(per_tick)
            ]
            for event in batch:
                sent[event["id"]] = now
            await http.post("/v1/logs", content=orjson.dumps(batch))
            last_send = time.time()
            next_tick += tick
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    stop.set()
    await poll_task

    async def tail_caught_up() -> bool:
        return len(tailed) >= len(sent)

    with contextlib.suppress(AssertionError):  # report what arrived, even if not everything
        await eventually(tail_caught_up, within=30, what="live tail caught up")
    tail_task.cancel()
    await asyncio.gather(tail_task, return_exceptions=True)
    to_query = [1000 * (queryable[i] - sent[i]) for i in sent if i in queryable]
    to_tail = [1000 * (tailed[i] - sent[i]) for i in sent if i in tailed]
    return {
        "events sent": len(sent),
        "ingest->queryable p50 ms": statistics.median(to_query) if to_query else -1,
        "ingest->queryable p99 ms": percentile(to_query, 99),
        "ingest->queryable seen": len(to_query),
        "ingest->live-tail p50 ms": statistics.median(to_tail) if to_tail else -1,
        "ingest->live-tail p99 ms": percentile(to_tail, 99),
        "ingest->live-tail seen": len(to_tail),
    }


async def baseline(seconds: float, clients: int) -> dict[str, float]:
    """The original design: one POST and one insert_one per event."""
    database = f"bench_baseline_{uuid.uuid4().hex[:8]}"
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "bench.baseline.app", "--port", str(port), "--database", database],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/docs")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        done = 0
        stop = asyncio.Event()

        async def client(index: int) -> None:
            nonlocal done
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                n = index
                while not stop.is_set():
                    entry = {"level": "INFO", "service": SERVICES[n % 50], "message": f"event {n}"}
                    if (await http.post("/logs", json=entry)).status_code == 201:
                        done += 1
                    n += clients

        started = time.monotonic()
        tasks = [asyncio.create_task(client(i)) for i in range(clients)]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
        return {"baseline events/s": done / (time.monotonic() - started)}
    finally:
        proc.terminate()
        await proc.wait()
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri)
        await mongo.drop_database(database)
        await mongo.close()


async def main(args: argparse.Namespace) -> None:
    print(
        f"end-to-end bench: {args.seconds:.0f} s sustained, {args.senders} senders; "
        f"latency at {args.rate:,} events/s for {args.latency_seconds:.0f} s",
        flush=True,
    )
    async with pipeline() as pipe:
        load = await sustained(pipe, args.seconds, args.senders)
        print(f"  sustained: {load}", flush=True)
        lat = await latency(pipe, args.rate, args.latency_seconds)
        print(f"  latency:   {lat}", flush=True)
    base = await baseline(args.baseline_seconds, args.baseline_clients)
    print(f"  baseline:  {base}", flush=True)
    multiple = load["end-to-end stored events/s"] / base["baseline events/s"]
    figures: dict[str, Figure] = {**load, **lat, **base}
    figures["end-to-end / baseline"] = f"{multiple:.1f}x"
    print()
    for key, value in figures.items():
        shown = f"{value:,.1f}" if isinstance(value, float) else str(value)
        print(f"  {key:<36} {shown:>14}")
    load_avg = os.getloadavg()[0]
    print(
        "\n  targets: >= 20,000 events/s end to end; queryable p99 < 1 s and live-tail "
        f"p99 < 250 ms at 5,000 events/s; >= 20x the baseline (load average {load_avg:.1f})"
    )
    publish_figures(
        "e2e",
        {k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()},
        notes=f"{args.senders} senders of 1,000-event batches; baseline {args.baseline_clients} "
        "clients posting single events",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--baseline-clients", type=int, default=32)
    asyncio.run(main(parser.parse_args()))
