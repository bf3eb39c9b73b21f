"""Query service benchmark: p50/p99 under 20 concurrent clients, and each query's plan.

    uv run python -m bench.query_bench               # 10 million events (takes a long while)
    uv run python -m bench.query_bench --events 500000

Loads events into a unique database (20 services, spread over ``--days``,
several per millisecond), starts the query service as a real process on it,
then measures over HTTP:

* filtered pages: service + level + 1 h, service alone over 24 h (never cached);
* text search: whole words (``match=word``) over 24 h, a substring's first page over 24 h;
* histograms by level and by service over 24 h and 7 d, uncached (every
  request its own key), cold and cached; errors, services and top messages
  uncached and cached.

Each row gives p50 and p99 latency, the query service's CPU per request (from /proc)
and this process's own ("own ms": the load generator, which shares the two cores; see
bench/lean_http.py for why it is not httpx).

The load stores each event with its template hash and fills the
rollups with the writer's own function (``logriver_writer.rollups.load``), and
reports the write-path cost: CPU per event for that work, and documents and
bytes (data, indexes) per event. Prints the ``explain`` plan of each list query
(it fails on a COLLSCAN or a blocking SORT), then drops the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient, WriteConcern

from bench.lean_http import LeanClient
from bench.proc import py_spy_record, tree_cpu_seconds
from bench.results import Figure, publish_figures
from logriver_common.auth import DEV_KEY
from logriver_common.documents import event_to_document
from logriver_common.event import Level, LogEvent
from logriver_common.indexes import ensure_log_indexes, rollup_collection_names
from logriver_query import word_search
from logriver_query.filters import parse_filter
from logriver_query.settings import QuerySettings
from logriver_writer import rollups
from tests.processes import ServiceProcess
from tests.stack import STACK

SERVICES = [f"svc-{n:02d}" for n in range(20)]
LEVELS = list(Level)
WEIGHTS = [20, 55, 15, 8, 2]
WORDS = ["checkout", "payment", "inventory", "session", "login", "upload", "report", "search"]
MESSAGES = [
    "GET /api/{w}/{n} 200 in {n} ms",
    "{w} provider timed out after {n} ms",
    "cache miss for {w}:{n}",
    "Connection reset by peer while calling {w}",
    "retrying {w} request (attempt {n})",
]
CLIENTS = 20
BATCH = 50_000


@dataclass
class Result:
    name: str
    latencies: list[float]
    errors: Counter[str]
    note: str = ""
    # The query service's CPU (from /proc) per request: what serving costs, apart from
    # waiting for MongoDB and from this process's own clients.
    service_cpu_ms: float = 0.0
    # This process's CPU per request (the load generator's own cost, sharing the box).
    bench_cpu_ms: float = 0.0

    def percentiles(self) -> tuple[float, float]:
        ms = sorted(x * 1000 for x in self.latencies)
        return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]

    def row(self) -> str:
        ms = self.latencies
        p50, p99 = self.percentiles()
        failed = ", ".join(f"{n} x {code}" for code, n in self.errors.items())
        note = "; ".join(x for x in (self.note, failed and f"answered 4xx: {failed}") if x)
        cpu = self.service_cpu_ms
        own = self.bench_cpu_ms
        row = f"{self.name:<30} {len(ms):>5} {p50:>9.1f} {p99:>9.1f} {cpu:>8.2f} {own:>8.2f}"
        return f"{row}  {note}"


def batches(total: int, newest: datetime, days: float, seed: int = 7) -> Iterator[list[Any]]:
    rng = random.Random(seed)
    span_ms = int(days * 86_400_000)
    step = span_ms / total
    for start in range(0, total, BATCH):
        docs = []
        for i in range(start, min(total, start + BATCH)):
            # Several events per millisecond at this rate: shared timestamps are the norm.
            at = newest - timedelta(milliseconds=int(i * step) // 3 * 3)
            n = rng.randrange(10_000)
            # model_construct: the bench's own well-formed data; validation would
            # only slow the load (the tests cover the validated path).
            event = LogEvent.model_construct(
                id=str(uuid.UUID(int=rng.getrandbits(128))),
                timestamp=at,
                service=rng.choice(SERVICES),
                level=rng.choices(LEVELS, WEIGHTS)[0],
                message=rng.choice(MESSAGES).format(w=rng.choice(WORDS), n=n),
                host=f"web-{n % 12}",
                env="prod",
                trace_id=f"{rng.getrandbits(128):032x}" if n % 10 == 0 else None,
                metadata={"attempt": n % 5},
            )
            docs.append(event_to_document(event, None))
        yield docs


def rollup_cpu_us(total: int, newest: datetime, days: float) -> float:
    """CPU per event of what the writer adds: template hash, batch rollup and dictionary upserts."""
    docs = next(batches(min(total, BATCH), newest, days, seed=11))
    started = time.process_time()
    for start in range(0, len(docs), 5_000):
        chunk = docs[start : start + 5_000]
        masked = [rollups.enrich(d) for d in chunk]
        rollups.rollup_updates(chunk, masked, retention=timedelta(days=400))
    return (time.process_time() - started) / len(docs) * 1e6


async def storage_per_event(database: str, events: int) -> dict[str, float]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
    out: dict[str, float] = {}
    try:
        db = client[database]
        names = rollup_collection_names("logs")
        # The hourly template documents of older writers: never written by this load.
        for name in ("logs", *(name for name in names if name != names.legacy_templates)):
            stats = await db.command("collStats", name)
            out[f"{name} docs per event"] = round(stats["count"] / events, 4)
            out[f"{name} data bytes per event"] = round(stats["size"] / events, 1)
            out[f"{name} index bytes per event"] = round(stats["totalIndexSize"] / events, 1)
        stats = await db.command("collStats", "logs")
        for index, size in stats["indexSizes"].items():
            out[f"index {index} bytes per event"] = round(size / events, 1)
    finally:
        await client.close()
    return out


async def load(database: str, total: int, newest: datetime, days: float) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
    try:
        logs = client[database]["logs"]
        await ensure_log_indexes(logs)
        started = time.perf_counter()
        loaded = 0
        in_flight: set[asyncio.Task[None]] = set()
        for docs in batches(total, newest, days):
            # Two batches in flight: MongoDB stores one while this process makes the next.
            while len(in_flight) >= 2:
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
                    loaded += BATCH
            # Template hashes, rollups and dictionary exactly as the writer makes them.
            in_flight.add(asyncio.create_task(rollups.load(logs, docs)))
            await asyncio.sleep(0)
            rate = loaded / (time.perf_counter() - started)
            print(f"\r  loaded {loaded:>9,} events ({rate:,.0f}/s)", end="", flush=True)
        await asyncio.gather(*in_flight)
        # One w=3 write: every secondary has caught up before the reads start.
        await logs.with_options(write_concern=WriteConcern(w=3, wtimeout=600_000)).insert_one(
            event_to_document(LogEvent(service="bench", message="loaded", timestamp=newest), None)
        )
        print()
    finally:
        await client.close()


async def burst(
    http: list[LeanClient],
    requests: int,
    make: Callable[[int], tuple[str, dict[str, Any]]],
    errors: Counter[str],
) -> list[float]:
    """``CLIENTS`` concurrent clients, each sending ``requests`` requests one after another.

    A 4xx (e.g. ``query_too_broad`` when a query runs out of ``maxTimeMS``) is
    counted, not fatal: it is the service protecting the database, and part of
    the result. Anything else stops the bench.
    """
    latencies: list[float] = []

    async def client(c: int) -> None:
        for r in range(requests):
            path, params = make(c * requests + r)
            started = time.perf_counter()
            status, body = await http[c].get(path, params)
            latencies.append(time.perf_counter() - started)
            if 400 <= status < 500:
                errors[json.loads(body).get("error", str(status))] += 1
            elif status != 200:
                raise RuntimeError(f"{path} {params}: {status} {body[:300]!r}")

    await asyncio.gather(*(client(c) for c in range(CLIENTS)))
    return latencies


async def newest_stored(database: str) -> datetime:
    """The newest event's time in a kept database: the windows are placed from it."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
    try:
        newest = await client[database]["logs"].find_one({}, sort=[("timestamp", -1)])
    finally:
        await client.close()
    if newest is None:
        raise SystemExit(f"{database} holds no events")
    stamp: datetime = newest["timestamp"]  # the loader's last event is at `newest` itself
    return stamp


async def measure(url: str, pid: int, newest: datetime, days: float) -> list[Result]:
    rng = random.Random(3)
    span_h = int(days * 24) - 1

    def hour(i: int) -> dict[str, str]:
        end = newest - timedelta(hours=rng.randrange(max(1, span_h)))
        return {"since": (end - timedelta(hours=1)).isoformat(), "until": end.isoformat()}

    def filtered(i: int) -> tuple[str, dict[str, Any]]:
        return "/v1/logs", {"service": rng.choice(SERVICES), "level": "ERROR", **hour(i)}

    day = {"since": (newest - timedelta(hours=24)).isoformat(), "until": newest.isoformat()}
    week = {"since": (newest - timedelta(days=7)).isoformat(), "until": newest.isoformat()}

    def service_day(i: int) -> tuple[str, dict[str, Any]]:
        return "/v1/logs", {"service": rng.choice(SERVICES), **day}

    def words(i: int) -> tuple[str, dict[str, Any]]:
        return "/v1/logs", {"q": f"{rng.choice(WORDS)} provider", "match": "word", **day}

    def substring(i: int) -> tuple[str, dict[str, Any]]:
        return "/v1/logs", {"q": f"{rng.choice(WORDS)} provider timed", **day}

    def unique(path: str, window: dict[str, str], **extra: str) -> Callable[[int], Any]:
        def make(i: int) -> tuple[str, dict[str, Any]]:
            # A distinct `until` (by a few ms) per request: a distinct cache key, a real query.
            until = newest - timedelta(milliseconds=i + 1)
            return path, {**window, "until": until.isoformat(), **extra}

        return make

    def same(path: str, window: dict[str, str], **extra: str) -> Callable[[int], Any]:
        return lambda i: (path, {**window, **extra})

    histogram_same = same("/v1/stats/histogram", day)

    results = []

    async def run(
        name: str, requests: int, make: Callable[[int], tuple[str, dict[str, Any]]], note: str = ""
    ) -> None:
        errors: Counter[str] = Counter()
        before, own = tree_cpu_seconds(pid), time.process_time()
        latencies = await burst(http, requests, make, errors)
        cpu_ms = (tree_cpu_seconds(pid) - before) * 1000 / max(1, len(latencies))
        own_ms = (time.process_time() - own) * 1000 / max(1, len(latencies))
        result = Result(name, latencies, errors, note, cpu_ms, own_ms)
        print(f"  {result.row()}", flush=True)
        results.append(result)

    # One keep-alive connection per client, on a client lean enough not to be the figure.
    http = [LeanClient(url, {"X-API-Key": DEV_KEY}) for _ in range(CLIENTS)]
    try:
        await burst(http, 2, filtered, Counter())  # warm connections and MongoDB's cache
        await run("filtered page (svc+level+1h)", 10, filtered)
        await run("filtered page (svc, 24h)", 10, service_day)
        await run("word search (24h)", 10, words)
        await run("substring first page (24h)", 5, substring)
        hist = "/v1/stats/histogram"
        await run("24h histogram by level uncached", 10, unique(hist, day))
        await run("24h histogram by svc uncached", 10, unique(hist, day, group_by="service"))
        await run("7d histogram by level uncached", 5, unique(hist, week))
        await run("7d histogram by svc uncached", 5, unique(hist, week, group_by="service"))
        await run("24h histogram host= (scan)", 3, unique(hist, day, host="web-3"))
        await run("24h errors uncached", 10, unique("/v1/stats/errors", day))
        await run("24h services uncached", 10, unique("/v1/stats/services", day))
        await run("24h top-messages uncached", 10, unique("/v1/stats/top-messages", day))
        await run("1h top-messages uncached", 10, unique("/v1/stats/top-messages", {}))
        cold: list[float] = []
        cold_errors: Counter[str] = Counter()
        for round_ in range(5):
            # All 20 clients ask one question nobody asked before (flushing Redis is not
            # enough: the service holds hot copies of recent answers).
            until = (newest - timedelta(seconds=1, milliseconds=round_)).isoformat()
            cold += await burst(http, 1, same(hist, {**day, "until": until}), cold_errors)
        results.append(Result("24h histogram cold", cold, cold_errors, "new key; single-flight"))
        print(f"  {results[-1].row()}", flush=True)
        for name, make in (
            ("24h histogram cached", histogram_same),
            ("7d histogram cached", same(hist, week, group_by="service")),
            ("24h errors cached", same("/v1/stats/errors", day)),
            ("24h services cached", same("/v1/stats/services", day)),
            ("24h top-messages cached", same("/v1/stats/top-messages", day)),
        ):
            # One request first puts the answer in the cache: otherwise the first 20 requests
            # of the series wait for the miss's computation, and are the series' p99.
            path, params = make(0)
            if (await http[0].get(path, params))[0] != 200:
                raise RuntimeError(f"{path} {params}: not answered")
            await run(name, 20, make, note="answer cached before the series")
    finally:
        await asyncio.gather(*(client.close() for client in http))
    return results


def plan_summary(explain: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    stages: list[str] = []
    stats: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            stage = node.get("stage")
            if isinstance(stage, str):
                index = node.get("indexName")
                stages.append(f"{stage}({index})" if index else stage)
            for key in ("totalKeysExamined", "totalDocsExamined", "nReturned"):
                if key in node and key not in stats:
                    stats[key] = node[key]
            for key, value in node.items():
                if key not in ("rejectedPlans", "allPlansExecution"):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(explain)
    return " <- ".join(dict.fromkeys(stages)), stats


async def explain_all(database: str, newest: datetime) -> list[tuple[str, str, dict[str, Any]]]:
    settings = QuerySettings()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
    db = client[database]
    window = {
        "since": [(newest - timedelta(hours=2)).isoformat()],
        "until": [(newest - timedelta(hours=1)).isoformat()],
    }
    sort = {"timestamp": -1, "_id": -1}
    out = []
    try:
        day = {"since": [(newest - timedelta(hours=24)).isoformat()], "until": [newest.isoformat()]}
        for name, params in (
            ("filtered page", {**window, "service": ["svc-07"], "level": ["ERROR"]}),
            ("service 24h", {**day, "service": ["svc-07"]}),
            ("services+levels", {**day, "service": ["svc-01", "svc-02"], "level": [">=WARNING"]}),
            ("level 24h", {**day, "level": ["ERROR"]}),
            ("word search", {**day, "q": ["payment provider"], "match": ["word"]}),
            ("text search", {**window, "q": ["payment provider timed out"]}),
        ):
            flt = parse_filter(params, settings, newest)
            # As the service does: a word query first finds its templates in the dictionary.
            flt = await word_search.resolve(db["logs"], flt, flt.window, max_time_ms=10_000)
            command = {"find": "logs", "filter": flt.to_mongo(), "sort": sort, "limit": 101}
            explain = await db.command("explain", command, verbosity="executionStats")
            out.append((name, *plan_summary(explain)))
        flt = parse_filter(day, settings, newest)
        rollup_find = {
            "find": "logs_rollups",
            "filter": {"t": {"$gte": flt.window.since, "$lt": flt.window.until}},
        }
        explain = await db.command("explain", rollup_find, verbosity="executionStats")
        out.append(("24h rollups", *plan_summary(explain)))
    finally:
        await client.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=float, default=7.0, help="the span the events cover")
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    parser.add_argument(
        "--database",
        help="measure a database a --keep run loaded (same --events and --days), without loading",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="the query service's LOGRIVER_QUERY_WORKERS"
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="py-spy the service while it serves (collapsed stacks)"
    )
    args = parser.parse_args()
    database = args.database or f"bench_query_{uuid.uuid4().hex[:8]}"
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    print(f"query bench: {args.events:,} events over {args.days} days in {database}")
    service: ServiceProcess | None = None
    cpu = 0.0
    storage: dict[str, float] = {}
    try:
        started = time.perf_counter()
        if args.database:
            newest = await newest_stored(database)
            print(f"  reusing it (newest event {newest.isoformat()})")
        else:
            await load(database, args.events, newest, args.days)
        print(f"  load took {time.perf_counter() - started:,.0f} s")
        env = {
            "LOGRIVER_MONGO_DATABASE": database,
            "LOGRIVER_OTEL_ENABLED": "false",
            "LOGRIVER_REDIS_KEY_PREFIX": prefix,
            "LOGRIVER_QUERY_CACHE_TTL_SECONDS": "120",
            "LOGRIVER_QUERY_WORKERS": str(args.workers),
            "LOGRIVER_LOG_LEVEL": os.environ.get("LOGRIVER_LOG_LEVEL", "WARNING"),
        }
        plans = await explain_all(database, newest)
        print("explain (winning plan, executionStats):")
        for name, plan, stats in plans:
            print(f"  {name:<14} {plan}")
            print(f"  {'':<14} {stats}")
        if any("COLLSCAN" in plan for _, plan, _ in plans):
            raise SystemExit("a query plan is a COLLSCAN")
        if any("SORT" in plan.split(" <- ") for _, plan, _ in plans):
            raise SystemExit("a list plan has a blocking SORT")
        cpu = rollup_cpu_us(args.events, newest, args.days)
        storage = await storage_per_event(database, args.events)
        print(f"write path: {cpu:.1f} us CPU per event (template, rollup and dictionary upserts)")
        for name, value in storage.items():
            print(f"  {name}: {value}")
        service = ServiceProcess("query", env, tag="bench").start().wait_ready()
        print(
            f"\n{CLIENTS} concurrent clients; ~{args.events / args.days:,.0f} events per day; "
            f"{args.workers} query worker(s)"
        )
        columns = f"{'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'CPU ms':>8} {'own ms':>8}"
        print(f"  {'query':<30} {columns}  note")
        pid = service.proc.pid if service.proc is not None else 0
        profiler = None
        if args.profile:
            profiler = await asyncio.create_subprocess_exec(
                *py_spy_record(rate=100),
                *("--output", args.profile, "--pid", str(pid)),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        try:
            results = await measure(service.url, pid, newest, args.days)
        finally:
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                await profiler.wait()
    finally:
        if service is not None:
            service.terminate()
        if not (args.keep or args.database):
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri)
            await client.drop_database(database)
            await client.close()
    print("\nsummary")
    for result in results:
        print(f"  {result.row()}")
    figures: dict[str, Figure] = {}
    for result in results:
        p50, p99 = result.percentiles()
        figures[f"{result.name} p50 ms"] = round(p50, 1)
        figures[f"{result.name} p99 ms"] = round(p99, 1)
    figures["plans"] = "; ".join(f"{name}: {plan}" for name, plan, _ in plans)
    figures["write path CPU us per event"] = round(cpu, 1)
    figures.update(storage)
    publish_figures(
        "query",
        figures,
        notes=f"{args.events:,} events over {args.days} days, {CLIENTS} clients, "
        f"{args.workers} query worker(s)",
    )


if __name__ == "__main__":
    asyncio.run(main())
