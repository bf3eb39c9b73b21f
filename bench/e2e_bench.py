"""The whole pipeline under load, the original design and raw clients as baselines, in one run.

    uv run python -m bench.e2e_bench [--quick] [--rounds 5] [--round-seconds 12] [--senders 4]

Phases, each repeated ``--rounds`` times and quoted as the median of its rounds:

1. Sustained: 1,000-event batches through the gateway from ``--senders``
   clients while the query service answers searches and histograms and the
   stream feeds ``--tail-clients`` live-tail clients (one service each). After a
   warm-up, each round reads the CPU time (utime+stime from /proc/<pid>/stat) of
   every process (gateway, relay, writer, stream, alerter, query, the Kafka
   broker, each mongod) and the events stored in MongoDB; CPU per event is that
   round's CPU over the events stored in that round.
2. Gateway alone: a second gateway on a topic nobody reads, same senders, with one
   worker process and then with ``--gateway-workers`` (default: one per core); and
   raw aiokafka ``send_batch()`` of the same records from this process.
3. Kept up: 1,000-event batches paced at each rate of ``--paced-rates`` in turn, with
   no query or live-tail load (as the baselines): the highest rate MongoDB stores as
   fast as it is sent over each step's second half (``--paced-share``). On one box
   phase 1's gateway takes the cores the writer needs; this is the rate the pipeline
   stores as fast as it is sent.
4. Latency at each steady rate of ``--rates``: ingest -> queryable and ingest -> live
   tail (a rate the pipeline stores, and one near or above what it stores).
5. Raw ``insert_many`` (w=majority, ``--senders`` writers, 1,000 per call) of the
   documents the writer stored, into a collection with the writer's indexes.
6. The original design (bench/baseline/app.py): ``POST /logs/bulk`` (1,000 per
   request, ``insert_many``) from ``--senders`` clients, then ``POST /logs`` (one
   ``insert_one``) from ``--baseline-clients`` clients.

Every service runs as in production (``python -m logriver_<service>``, local mode,
tracing on at a 1% sample) against its own topics and database, so nothing else
on the stack is measured or disturbed; but the broker and the mongod processes
are shared with whatever else runs on the machine, and their CPU is counted whole.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from bson import Binary, ObjectId
from pymongo import AsyncMongoClient, IndexModel

from bench.proc import py_spy_record, tree_cpu_seconds
from bench.results import Figure, publish_figures
from bench.service_metrics import metric
from logriver_common.auth import DEV_KEY
from logriver_common.event import utcnow
from logriver_common.event_rule import admit_object, encode
from tests.processes import ServiceProcess, free_port
from tests.stack import STACK, eventually

AUTH = {"Authorization": f"Bearer {DEV_KEY}"}
# A live tail may be quiet for long stretches: no read timeout, a bounded connect.
STREAMING = httpx.Timeout(10.0, read=None)
SERVICES = [f"e2e-bench-{i}" for i in range(50)]
LEVELS = ["DEBUG", "INFO", "INFO", "INFO", "INFO", "WARNING", "ERROR"]
PIPELINE = ("ingest", "relay", "writer", "stream", "alerter", "query")
MONGODS = ("mongod-27017", "mongod-27018", "mongod-27019")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] if ordered else 0.0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def batch_events(seed: int, size: int = 1_000) -> list[dict[str, Any]]:
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
    return events


def batch_body(seed: int, size: int = 1_000) -> bytes:
    return orjson.dumps(batch_events(seed, size))


# --- CPU accounting --------------------------------------------------------------------


def stack_pids() -> dict[str, int]:
    """The shared stack's Kafka broker and mongod processes, from devstack's pid files."""
    from devstack import paths  # the bench runs from the workspace, where devstack is

    pids: dict[str, int] = {}
    for name in ("kafka", *MONGODS):
        path = paths.pid_file(name)
        if path.exists():
            pids["kafka broker" if name == "kafka" else name] = int(path.read_text().split()[0])
    return pids


@dataclass
class Snapshot:
    at: float
    cpu: dict[str, float]
    count: int
    acked: int = 0


class Meter:
    """CPU seconds of named processes (``self`` is this bench process) between snapshots."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)

    def cpu(self) -> dict[str, float]:
        out = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}
        out["bench process"] = time.process_time()
        return out


@dataclass
class Round:
    seconds: float
    events: int  # events stored (or acked, for phases that store nothing)
    cpu: dict[str, float]  # CPU seconds per process during the round
    acked: int = 0  # events the gateway acknowledged in the round (sustained phase)

    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def us_per_event(self, name: str) -> float:
        return 1e6 * self.cpu.get(name, 0.0) / self.events if self.events else float("nan")

    def us_per_acked(self, name: str) -> float:
        return 1e6 * self.cpu.get(name, 0.0) / self.acked if self.acked else float("nan")


def rounds_between(snaps: list[Snapshot]) -> list[Round]:
    return [
        Round(
            seconds=b.at - a.at,
            events=b.count - a.count,
            cpu={k: b.cpu[k] - a.cpu.get(k, 0.0) for k in b.cpu},
            acked=b.acked - a.acked,
        )
        for a, b in itertools.pairwise(snaps)
    ]


async def measured_rounds(
    meter: Meter,
    count: Callable[[], Any],
    rounds: int,
    seconds: float,
    acked: Callable[[], int] = lambda: 0,
) -> list[Round]:
    """``rounds`` consecutive windows of ``seconds``; ``count`` gives the events so far."""
    snaps = [Snapshot(time.monotonic(), meter.cpu(), await count(), acked())]
    for _ in range(rounds):
        await asyncio.sleep(seconds)
        snaps.append(Snapshot(time.monotonic(), meter.cpu(), await count(), acked()))
    return rounds_between(snaps)


def median_rate(rounds: list[Round]) -> float:
    return median([r.rate() for r in rounds])


def median_us(rounds: list[Round], *names: str) -> float:
    return median([sum(r.us_per_event(n) for n in names) for r in rounds if r.events > 0])


# --- the pipeline ----------------------------------------------------------------------


@dataclass
class Pipeline:
    """The services of one bench run, on private topics, database and schema."""

    run: str
    topic: str
    database: str
    schema: str
    procs: dict[str, ServiceProcess] = field(default_factory=dict)

    @property
    def side_topic(self) -> str:
        """Read by nobody: the gateway-alone and raw send_batch() phases write here."""
        return f"{self.topic}.side"

    def env(self, topic: str | None = None) -> dict[str, str]:
        topic = topic or self.topic
        return {
            "LOGRIVER_KAFKA_TOPIC": topic,
            "LOGRIVER_KAFKA_DLQ_TOPIC": f"{self.topic}.dlq",
            "LOGRIVER_KAFKA_RAW_TOPIC": f"{self.topic}.raw",
            "LOGRIVER_MONGO_DATABASE": self.database,
            "LOGRIVER_POSTGRES_DSN": f"{STACK.postgres_dsn}?options=-csearch_path%3D{self.schema}",
            "LOGRIVER_WRITER_GROUP_ID": f"writer-{self.topic}",
            "LOGRIVER_ALERTER_GROUP_ID": f"alerter-{self.topic}",
            "LOGRIVER_INGEST_RELAY_GROUP_ID": f"relay-{self.topic}",
            "LOGRIVER_OTEL_SAMPLE_RATIO": "0.01",
            "LOGRIVER_LOG_LEVEL": "WARNING",
        }

    def url(self, name: str) -> str:
        return self.procs[name].url

    def pids(self) -> dict[str, int]:
        return {name: proc.proc.pid for name, proc in self.procs.items() if proc.proc is not None}


def _topics(pipe: Pipeline) -> list[str]:
    return [pipe.topic, f"{pipe.topic}.dlq", f"{pipe.topic}.raw", pipe.side_topic]


async def stored_so_far(pipe: Pipeline) -> int:
    """The events the writer has stored, counted after each transaction's w=majority commit.

    MongoDB's own count of a collection (``estimated_document_count``) is no measure here:
    it counts the inserts of a transaction that has not committed yet, and the writer, when
    it is behind, always has one open with up to a whole batch (5,000 events) in it. Over a
    12 s round at 2,000 events/s that is up to ±400 events/s. One scrape per sample costs
    the writer about 3 ms of CPU."""
    async with httpx.AsyncClient(base_url=pipe.url("writer"), timeout=10) as http:
        return int(await metric(http, "logriver_writer_events_written_total "))


@contextlib.asynccontextmanager
async def pipeline() -> AsyncIterator[Pipeline]:
    run = uuid.uuid4().hex[:8]
    pipe = Pipeline(
        run=run, topic=f"bench.e2e.{run}", database=f"bench_e2e_{run}", schema=f"bench_{run}"
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=STACK.kafka)
    await admin.start()
    pg = await asyncpg.connect(STACK.postgres_dsn)
    await pg.execute(f'CREATE SCHEMA "{pipe.schema}"')
    await admin.create_topics(
        [
            NewTopic(pipe.topic, 6, 1),
            NewTopic(f"{pipe.topic}.dlq", 1, 1),
            NewTopic(f"{pipe.topic}.raw", 6, 1),
            NewTopic(pipe.side_topic, 6, 1),
        ]
    )
    try:
        for name in ("writer", "ingest", "query", "stream", "alerter"):
            pipe.procs[name] = ServiceProcess(name, pipe.env(), tag=f"bench-{run}").start()
        pipe.procs["relay"] = ServiceProcess(
            "ingest",
            pipe.env(),
            tag=f"bench-relay-{run}",
            args=("relay",),
            port_env="LOGRIVER_INGEST_RELAY_PORT",
        ).start()
        for proc in pipe.procs.values():
            await asyncio.to_thread(proc.wait_ready, 90)
        yield pipe
    finally:
        for proc in pipe.procs.values():
            proc.kill()
        await admin.delete_topics(_topics(pipe))
        await admin.close()
        await pg.execute(f'DROP SCHEMA IF EXISTS "{pipe.schema}" CASCADE')
        await pg.close()
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri)
        await mongo.drop_database(pipe.database)
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


class Senders:
    """``count`` clients posting 1,000-event batches to ``url + path`` until stopped."""

    def __init__(self, url: str, path: str, count: int, ok: int) -> None:
        self.url, self.path, self.count, self.ok = url, path, count, ok
        self.acked = 0
        self.stop = asyncio.Event()
        self.bodies = [batch_body(seed) for seed in range(count * 4)]
        self.tasks: list[asyncio.Task[None]] = []

    async def _send(self, index: int) -> None:
        headers = {**AUTH, "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as http:
            n = index
            while not self.stop.is_set():
                resp = await http.post(
                    self.path, content=self.bodies[n % len(self.bodies)], headers=headers
                )
                if resp.status_code == self.ok:
                    self.acked += 1_000
                n += self.count

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._send(i)) for i in range(self.count)]

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)


async def sustained(pipe: Pipeline, args: argparse.Namespace, meter: Meter) -> dict[str, Any]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri)
    logs = mongo[pipe.database]["logs"]
    stop = asyncio.Event()
    served: list[float] = []
    tailed = [0]
    background = [
        *(
            asyncio.create_task(query_load(pipe.url("query"), stop, served))
            for _ in range(args.query_clients)
        ),
        *(
            asyncio.create_task(tail_load(pipe.url("stream"), SERVICES[i], stop, tailed))
            for i in range(args.tail_clients)
        ),
    ]
    senders = Senders(pipe.url("ingest"), "/v1/logs", args.senders, 202)
    senders.start()
    try:
        await asyncio.sleep(args.warmup)

        acked_before = senders.acked
        profilers = await start_profilers(pipe, args)
        rounds = await measured_rounds(
            meter,
            lambda: stored_so_far(pipe),
            args.rounds,
            args.round_seconds,
            lambda: senders.acked,
        )
        for profiler in profilers:
            await profiler.wait()
        acked_rate = (senders.acked - acked_before) / sum(r.seconds for r in rounds)
        await senders.finish()

        async def all_stored() -> bool:
            return await logs.count_documents({}) >= senders.acked

        # The full run lets the writer drain before the next phases; --quick waits a
        # minute at most (the next phases then share the machine with the drain).
        drained = True
        try:
            await eventually(
                all_stored, within=60 if args.quick else 600, what="every acked event stored"
            )
        except AssertionError:
            if not args.quick:
                raise
            drained = False
            print("  (quick: the writer was still draining when the next phase began)")
        sample = await logs.find({}).limit(20_000).to_list()
        indexes = [spec async for spec in await logs.list_indexes()]
    finally:
        stop.set()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await mongo.close()
    return {
        "rounds": rounds,
        "acked events/s": acked_rate,
        "query requests served": len(served),
        "query p99 ms under load": 1000 * percentile(served, 99),
        "live-tail events delivered": tailed[0],
        "writer drained before the next phases": "yes" if drained else "no",
        "sample": sample,
        "indexes": indexes,
    }


async def kept_up(pipe: Pipeline, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The steady rates the whole pipeline stores as fast as they are sent.

    The sustained phase sends as fast as the gateway acknowledges: on one box the gateway
    then takes the cores the writer needs, and the stored rate it measures is that of an
    overloaded machine. Here 1,000-event batches (the same bodies) are paced at each rate
    of ``--paced-rates`` in turn, for ``--paced-seconds``, with no other load (as the
    baselines run: the searches of phase 1 take whatever CPU is left, so a rate kept up
    under them would measure how hard they search). A rate is kept up when, over the
    step's second half (batches still going out), the writer stores at least
    ``--paced-share`` of it per second: the backlog does not grow. The steps stop at the
    first rate not kept up (after the writer has drained it).
    """
    bodies = [batch_body(seed) for seed in range(16)]
    headers = {**AUTH, "Content-Type": "application/json"}
    steps: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=pipe.url("ingest"), timeout=60) as http:
        for rate in args.paced_rates:
            before = await stored_so_far(pipe)
            acked = 0

            async def post(n: int) -> None:
                nonlocal acked
                resp = await http.post("/v1/logs", content=bodies[n % 16], headers=headers)
                if resp.status_code == 202:
                    acked += 1_000

            async def sample() -> tuple[float, int]:
                return time.monotonic(), await stored_so_far(pipe)

            # Stored per second over the step's second half, while batches still go
            # out: a pipeline that keeps up stores what it is sent, however late.
            posts: list[asyncio.Task[None]] = []
            started = time.monotonic()
            t1, s1 = started, before
            for n in itertools.count():
                due = started + n * 1_000 / rate
                if due >= started + args.paced_seconds:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                posts.append(asyncio.create_task(post(n)))
                if n == int(args.paced_seconds * rate / 2_000):
                    t1, s1 = await sample()
            t2, s2 = await sample()
            await asyncio.gather(*posts)
            stored_rate = (s2 - s1) / (t2 - t1)
            step = {
                "rate": rate,
                "sent/s": len(posts) * 1_000 / args.paced_seconds,
                "stored/s": stored_rate,
                "kept up": stored_rate >= args.paced_share * rate,
            }
            steps.append(step)
            print(f"  paced {rate:,}/s: {step}", flush=True)

            async def drained(total: int = before + acked) -> bool:
                return await stored_so_far(pipe) >= total

            await eventually(drained, within=600, interval=0.5, what="the paced backlog stored")
            if not step["kept up"]:
                break
    return steps


async def start_profilers(pipe: Pipeline, args: argparse.Namespace) -> list[Any]:
    """py-spy on the gateway, writer, stream and alerter in the measured rounds (``--profile``).

    Sampling costs the profiled process little (``--nonblocking``: it is never
    paused) but py-spy itself uses CPU: quote CPU figures from runs without it.
    """
    if not args.profile:
        return []
    out = Path(args.profile)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    seconds = int(args.rounds * args.round_seconds)
    procs = []
    for name in ("ingest", "writer", "stream", "alerter"):
        pid = pipe.pids()[name]
        procs.append(
            await asyncio.create_subprocess_exec(
                *py_spy_record(rate=50),
                "--duration",
                str(seconds),
                "--pid",
                str(pid),
                "--output",
                str(out / f"{name}.txt"),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
    return procs


async def gateway_alone(pipe: Pipeline, args: argparse.Namespace, workers: int) -> list[Round]:
    """A second gateway publishing to a topic nobody reads: the gateway's own rate and CPU.

    Its CPU is its processes' together (``tree_cpu_seconds``: the supervisor and its workers).
    """
    env = {**pipe.env(pipe.side_topic), "LOGRIVER_INGEST_WORKERS": str(workers)}
    proc = ServiceProcess("ingest", env, tag=f"bench-side-{workers}-{pipe.run}")
    proc.start()
    try:
        await asyncio.to_thread(proc.wait_ready, 90)
        side = Meter({"gateway alone": proc.proc.pid if proc.proc else 0, **stack_pids()})
        senders = Senders(proc.url, "/v1/logs", args.senders, 202)
        senders.start()
        await asyncio.sleep(min(args.warmup, 5))

        async def acked() -> int:
            return senders.acked

        rounds = await measured_rounds(side, acked, args.rounds, args.side_seconds)
        await senders.finish()
        return rounds
    finally:
        proc.kill()


async def raw_send_batch(pipe: Pipeline, args: argparse.Namespace) -> list[Round]:
    """aiokafka ``send_batch()`` of the records the gateway would publish (same settings)."""
    now = utcnow()
    records = [
        [
            (event.service.encode(), encode(event))
            for event in (
                admit_object({**item, "id": uuid.uuid4().hex, "received_at": now}, now=now)
                for item in batch_events(seed)
            )
        ]
        for seed in range(args.senders * 4)
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=STACK.kafka,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=512 * 1024,
        compression_type="zstd",
    )
    await producer.start()
    partitioner = DefaultPartitioner()
    sent = 0
    stop = asyncio.Event()
    locks: dict[int, asyncio.Lock] = {}

    async def sender(index: int) -> None:
        nonlocal sent
        partitions = sorted(await producer.partitions_for(pipe.side_topic))
        n = index
        while not stop.is_set():
            batches: dict[int, Any] = {}
            for key, value in records[n % len(records)]:
                p = int(partitioner(key, partitions, partitions))
                batch = batches.get(p)
                if batch is None:
                    batch = batches[p] = producer.create_batch()
                batch.append(timestamp=None, key=key, value=value, headers=[])
            futures = []
            for p, batch in batches.items():
                batch.close()
                async with locks.setdefault(p, asyncio.Lock()):
                    futures.append(await producer.send_batch(batch, pipe.side_topic, partition=p))
            await asyncio.gather(*futures)
            sent += 1_000
            n += args.senders

    tasks = [asyncio.create_task(sender(i)) for i in range(args.senders)]
    try:
        await asyncio.sleep(2)

        async def count() -> int:
            return sent

        return await measured_rounds(Meter(stack_pids()), count, args.rounds, args.side_seconds)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()


async def latency(pipe: Pipeline, rate: int, seconds: float) -> dict[str, float]:
    """Send ``rate`` events/s with their send time; watch them arrive in query and tail."""
    service = f"e2e-bench-latency-{rate}"
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
                await poll_once(http)
                if stop.is_set() and time.time() - last_send > 30:
                    return
                await asyncio.sleep(0.05)

    async def poll_once(http: httpx.AsyncClient) -> None:
        """Newest first, page after page until an event an earlier poll saw: when more than
        a page arrived since the last poll, the older ones are sampled too (one page only
        never saw them, and they were the slower ones)."""
        params = {"service": service, "since": "5m", "limit": "1000"}
        while True:
            resp = await http.get("/v1/logs", params=params)
            now = time.time()
            body = resp.json()
            reached = False
            for event in body["events"]:
                if event["id"] in queryable:
                    reached = True
                else:
                    queryable[event["id"]] = now
            if reached or not body.get("next_cursor"):
                return
            params = {**params, "cursor": body["next_cursor"]}

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


def fresh_id(old: Any) -> Any:
    """A new ``_id`` of the same kind as the writer's."""
    if isinstance(old, Binary):
        return Binary.from_uuid(uuid.uuid4())
    if isinstance(old, uuid.UUID):
        return uuid.uuid4()
    if isinstance(old, ObjectId):
        return ObjectId()
    return str(uuid.uuid4())


async def raw_insert_many(
    sample: list[dict[str, Any]], indexes: list[dict[str, Any]], args: argparse.Namespace
) -> list[Round]:
    """``insert_many`` (w=majority) of the documents the writer stored, with its indexes."""
    database = f"bench_rawins_{uuid.uuid4().hex[:8]}"
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, w="majority")
    logs = mongo[database]["logs"]
    models = []
    for spec in indexes:
        if spec["name"] == "_id_":
            continue
        options = {k: v for k, v in spec.items() if k not in ("v", "key", "ns")}
        models.append(IndexModel(list(spec["key"].items()), **options))
    if models:
        await logs.create_indexes(models)
    stop = asyncio.Event()
    stored = 0

    async def writer(index: int) -> None:
        nonlocal stored
        n = index
        while not stop.is_set():
            start = (n * 1_000) % max(1, len(sample) - 1_000)
            docs = [{**doc, "_id": fresh_id(doc["_id"])} for doc in sample[start : start + 1_000]]
            await logs.insert_many(docs, ordered=False)
            stored += len(docs)
            n += args.senders

    tasks = [asyncio.create_task(writer(i)) for i in range(args.senders)]
    try:
        await asyncio.sleep(2)

        async def count() -> int:
            return stored

        return await measured_rounds(Meter(stack_pids()), count, args.rounds, args.side_seconds)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await mongo.drop_database(database)
        await mongo.close()


@contextlib.asynccontextmanager
async def original_design() -> AsyncIterator[tuple[str, int]]:
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
        yield url, proc.pid
    finally:
        proc.terminate()
        await proc.wait()
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri)
        await mongo.drop_database(database)
        await mongo.close()


async def baseline_bulk(args: argparse.Namespace) -> list[Round]:
    """The original design's ``POST /logs/bulk``: 1,000 events, one insert_many, per request."""
    async with original_design() as (url, pid):
        senders = Senders(url, "/logs/bulk", args.senders, 201)
        senders.start()
        await asyncio.sleep(2)

        async def count() -> int:
            return senders.acked

        meter = Meter({"original app": pid, **stack_pids()})
        rounds = await measured_rounds(meter, count, args.rounds, args.side_seconds)
        await senders.finish()
        return rounds


async def baseline_single(args: argparse.Namespace) -> list[Round]:
    """The original design's ``POST /logs``: one POST and one insert_one per event."""
    async with original_design() as (url, pid):
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
                    n += args.baseline_clients

        tasks = [asyncio.create_task(client(i)) for i in range(args.baseline_clients)]
        await asyncio.sleep(1)

        async def count() -> int:
            return done

        meter = Meter({"original app": pid, **stack_pids()})
        rounds = await measured_rounds(meter, count, 1, args.baseline_seconds)
        stop.set()
        await asyncio.gather(*tasks)
        return rounds


# --- report ----------------------------------------------------------------------------


def cpu_table(rounds: list[Round], names: list[str]) -> dict[str, float]:
    return {name: round(median_us(rounds, name), 1) for name in names}


def _alone(workers: int) -> str:
    return "gateway alone" if workers == 1 else f"gateway alone, {workers} workers"


def report(
    args: argparse.Namespace,
    load: dict[str, Any],
    sides: Mapping[int, list[Round]],
    raw_kafka: list[Round],
    raw_mongo: list[Round],
    bulk: list[Round],
    single: list[Round],
    lat: dict[str, float],
    paced: list[dict[str, Any]],
) -> dict[str, Figure]:
    rounds: list[Round] = load["rounds"]
    stored = median_rate(rounds)
    kept = max((step["stored/s"] for step in paced if step["kept up"]), default=0.0)
    rates = {
        "gateway acked events/s (sustained, whole pipeline)": load["acked events/s"],
        "end-to-end stored events/s (sustained)": stored,
        "end-to-end stored events/s, paced: the highest rate kept up": kept,
        **{f"{_alone(w)} events/s (topic nobody reads)": median_rate(r) for w, r in sides.items()},
        "raw aiokafka send_batch() events/s": median_rate(raw_kafka),
        "raw insert_many events/s (writer's documents and indexes)": median_rate(raw_mongo),
        "original POST /logs/bulk events/s": median_rate(bulk),
        "original POST /logs events/s": median_rate(single),
    }
    ratios = {
        "end-to-end / original bulk": stored / max(1e-9, median_rate(bulk)),
        "end-to-end paced, kept up / original bulk": kept / max(1e-9, median_rate(bulk)),
        "end-to-end paced, kept up / raw insert_many": kept / max(1e-9, median_rate(raw_mongo)),
        "end-to-end / raw insert_many": stored / max(1e-9, median_rate(raw_mongo)),
        **{
            f"{_alone(w)} / raw send_batch()": median_rate(r) / max(1e-9, median_rate(raw_kafka))
            for w, r in sides.items()
        },
        "end-to-end / original POST /logs": stored / max(1e-9, median_rate(single)),
    }
    services = [n for n in PIPELINE if n in rounds[0].cpu]
    per_process = cpu_table(rounds, [*services, "kafka broker", *MONGODS])
    per_process["logriver services total"] = round(median_us(rounds, *services), 1)
    # When the writer falls behind, "per stored event" charges the upstream processes
    # for events stored later: per acknowledged event is their own cost.
    per_acked = {
        name: round(median([r.us_per_acked(name) for r in rounds if r.acked > 0]), 1)
        for name in ("ingest", "relay", "stream", "alerter", "writer", "kafka broker")
        if name in rounds[0].cpu
    }
    per_process["mongod total"] = round(median_us(rounds, *MONGODS), 1)
    compare = {
        **{_alone(w): round(median_us(r, "gateway alone"), 1) for w, r in sides.items()},
        **{
            f"{_alone(w)}: kafka broker": round(median_us(r, "kafka broker"), 1)
            for w, r in sides.items()
        },
        "raw send_batch(): producer (this process)": round(
            median_us(raw_kafka, "bench process"), 1
        ),
        "raw send_batch(): kafka broker": round(median_us(raw_kafka, "kafka broker"), 1),
        "raw insert_many: mongod total": round(median_us(raw_mongo, *MONGODS), 1),
        "original bulk: app": round(median_us(bulk, "original app"), 1),
        "original bulk: mongod total": round(median_us(bulk, *MONGODS), 1),
        "original single: app": round(median_us(single, "original app"), 1),
        "original single: mongod total": round(median_us(single, *MONGODS), 1),
    }
    figures: dict[str, Figure] = {}
    for key, value in rates.items():
        figures[key] = round(value, 1)
    for key, value in ratios.items():
        figures[key] = f"{100 * value:.0f}%" if value < 2 else f"{value:.1f}x"
    figures["per-round end-to-end events/s"] = " / ".join(f"{r.rate():,.0f}" for r in rounds)
    figures["paced steps: events/s sent -> stored"] = " / ".join(
        f"{step['sent/s']:,.0f} -> {step['stored/s']:,.0f}" for step in paced
    )
    for key, value in per_process.items():
        figures[f"CPU us/stored event: {key}"] = value
    for key, value in per_acked.items():
        figures[f"CPU us/acked event: {key}"] = value
    for key, value in compare.items():
        figures[f"CPU us/event: {key}"] = value
    for key in ("query requests served", "query p99 ms under load", "live-tail events delivered"):
        figures[key] = round(float(load[key]), 1)
    figures["writer drained before the next phases"] = load["writer drained before the next phases"]
    for key, value in lat.items():
        figures[key] = round(value, 1)
    return figures


def print_table(figures: Mapping[str, Figure]) -> None:
    print()
    for key, value in figures.items():
        shown = f"{value:,.1f}" if isinstance(value, float) else str(value)
        print(f"  {key:<58} {shown:>16}")


async def main(args: argparse.Namespace) -> None:
    began = time.monotonic()
    print(
        f"end-to-end bench: warm-up {args.warmup:.0f} s then {args.rounds} rounds of "
        f"{args.round_seconds:.0f} s, {args.senders} senders, {args.tail_clients} tail clients; "
        f"baselines {args.rounds} x {args.side_seconds:.0f} s",
        flush=True,
    )
    async with pipeline() as pipe:
        meter = Meter({**pipe.pids(), **stack_pids()})
        meter.pids["gateway"] = meter.pids.pop("ingest")
        load = await sustained(pipe, args, meter)
        # Report the gateway under its own name, and keep the table's order.
        for r in load["rounds"]:
            r.cpu["ingest"] = r.cpu.pop("gateway")
        print(f"  sustained: {[f'{r.rate():,.0f}/s' for r in load['rounds']]}", flush=True)
        sides: dict[int, list[Round]] = {}
        for workers in sorted({1, args.gateway_workers}):
            sides[workers] = await gateway_alone(pipe, args, workers)
            rates = [f"{r.rate():,.0f}/s" for r in sides[workers]]
            print(f"  {_alone(workers)}: {rates}", flush=True)
        raw_kafka = await raw_send_batch(pipe, args)
        print(f"  raw send_batch: {[f'{r.rate():,.0f}/s' for r in raw_kafka]}", flush=True)
        paced = await kept_up(pipe, args)
        lat: dict[str, float] = {}
        for rate in args.rates:
            at_rate = await latency(pipe, rate, args.latency_seconds)
            print(f"  latency at {rate:,}/s: {at_rate}", flush=True)
            lat.update({f"{key} @ {rate:,}/s": value for key, value in at_rate.items()})
    raw_mongo = await raw_insert_many(load["sample"], load["indexes"], args)
    print(f"  raw insert_many: {[f'{r.rate():,.0f}/s' for r in raw_mongo]}", flush=True)
    bulk = await baseline_bulk(args)
    print(f"  original bulk: {[f'{r.rate():,.0f}/s' for r in bulk]}", flush=True)
    single = await baseline_single(args)
    print(f"  original single: {[f'{r.rate():,.0f}/s' for r in single]}", flush=True)
    figures = report(args, load, sides, raw_kafka, raw_mongo, bulk, single, lat, paced)
    print_table(figures)
    print(f"\n  load average {os.getloadavg()[0]:.1f}")
    notes = (
        f"{'quick mode; ' if args.quick else ''}medians of {args.rounds} rounds "
        f"({args.round_seconds:.0f} s sustained, {args.side_seconds:.0f} s baselines); "
        f"{args.senders} senders of 1,000-event batches, {args.tail_clients} live-tail clients, "
        f"{args.query_clients} query clients; CPU from /proc/<pid>/stat (utime+stime) per event "
        "stored in the round; the broker and mongod serve the whole machine and are counted whole"
    )
    publish_figures("e2e", figures, notes=notes)
    if not os.environ.get("LOGRIVER_BENCH_RESULTS") and args.write_docs:
        from bench.run_all import replace_section

        replace_section("e2e", sys.argv[1:], figures, notes, seconds=time.monotonic() - began)
        print("  wrote the e2e section of docs/benchmarks.md")


def rate_list(text: str) -> list[int]:
    """``--rates 2000,5000``: events/s, comma-separated, each at least 1."""
    rates = [int(rate) for rate in text.split(",")]
    if not rates or min(rates) < 1:
        raise argparse.ArgumentTypeError(f"rates must be positive integers: {text!r}")
    return rates


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a couple of minutes, for development")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-seconds", type=float, default=12.0)
    parser.add_argument("--side-seconds", type=float, default=6.0)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument(
        "--gateway-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes of the gateway-alone phase's second run (one run has 1)",
    )
    parser.add_argument("--tail-clients", type=int, default=10)
    parser.add_argument("--query-clients", type=int, default=4)
    parser.add_argument(
        "--rates",
        type=rate_list,
        default=[2_000, 5_000],
        help="events/s of each latency phase, comma-separated",
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy the gateway, writer, stream and alerter into DIR"
    )
    parser.add_argument(
        "--paced-rates",
        type=rate_list,
        default=[2_000, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000, 13_000],
        help="events/s of each step of the kept-up phase, ascending",
    )
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument(
        "--paced-share",
        type=float,
        default=0.95,
        help="a step is kept up when its second half stores this share of its rate",
    )
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--baseline-clients", type=int, default=32)
    parser.add_argument(
        "--no-write-docs",
        dest="write_docs",
        action="store_false",
        help="run alone, do not update docs/benchmarks.md",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.rounds, args.round_seconds, args.side_seconds = 5.0, 3, 8.0, 4.0
        args.latency_seconds, args.baseline_seconds, args.rates = 8.0, 5.0, [2_000]
        args.paced_rates, args.paced_seconds = [2_000, 4_000], 10.0
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
