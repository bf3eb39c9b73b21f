"""Live-tail bench: many SSE clients on one stream instance, events at a fixed rate.

    uv run python -m bench.stream_bench                 # 1,000 clients, then step up
    uv run python -m bench.stream_bench --clients 200 --no-step-up --duration 10

Starts one stream instance on a private topic (real Kafka, PostgreSQL for the
API key), connects N SSE clients, produces events at ``--rate`` per second with
``received_at`` set when each event is produced (what the gateway does), and
measures on the clients the time from ``received_at`` to the moment the event
arrives: p50/p99 ingest-to-delivery. It samples the instance's CPU and RSS from
/proc. Then it adds clients step by step until p99 passes 1 s (or
``--max-clients``) to find how many clients one instance holds.

Each client tails one service (``--services`` of them, events spread evenly),
the common live-tail use; ``--services 1`` makes every client receive every
event. Clients, producer and instance share this machine's cores, so the client
process's own CPU is printed too: when it saturates, latency is the clients'.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import resource
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.proc import cpu_seconds, rss_mib
from bench.results import Figure, publish_figures
from logriver_common.auth import DEV_KEY
from tests.processes import ServiceProcess
from tests.stack import STACK

_RECEIVED_AT = re.compile(rb'"received_at":"([^"]+)"')
_DROPPED = re.compile(rb'event: dropped\ndata: \{"dropped": (\d+)\}')
_MAX_SAMPLES = 3_000_000  # bounds the bench's own memory when every client gets every event


@dataclass
class Window:
    """Latencies and counts measured between ``start`` and ``stop``."""

    start: float = 0.0
    stop: float = float("inf")
    latencies: list[float] = field(default_factory=list)
    events: int = 0
    dropped: int = 0

    def open(self, now: float) -> bool:
        return self.start <= now < self.stop


class SseClient:
    """A minimal SSE reader on a raw connection: cheap enough to run thousands."""

    def __init__(self, port: int, service: str | None, window: Window) -> None:
        self._port = port
        self._service = service
        self._window = window
        self.opened = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await self._task

    async def _run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
        query = f"?service={self._service}" if self._service else ""
        writer.write(
            f"GET /v1/stream{query} HTTP/1.0\r\nHost: bench\r\n"
            f"Authorization: Bearer {DEV_KEY}\r\n\r\n".encode()
        )
        pending = b""
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    return
                now = time.time()
                pending += data
                cut = pending.rfind(b"\n\n")
                if cut < 0:
                    continue
                complete, pending = pending[:cut], pending[cut + 2 :]
                if not self.opened.is_set() and b": open" in complete:
                    self.opened.set()
                window = self._window
                if not window.open(now):
                    continue
                if len(window.latencies) < _MAX_SAMPLES:
                    for match in _RECEIVED_AT.finditer(complete):
                        sent = datetime.fromisoformat(match.group(1).decode()).timestamp()
                        window.latencies.append(now - sent)
                window.events += complete.count(b"event: log\n")
                for match in _DROPPED.finditer(complete):
                    window.dropped += int(match.group(1))
        finally:
            writer.close()


async def produce(topic: str, rate: int, services: int, stop: asyncio.Event) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=STACK.kafka, linger_ms=5, acks=1)
    await producer.start()
    sent = 0
    tick = 0.05
    per_tick = max(1, round(rate * tick))
    levels = ["DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR"]
    try:
        next_at = time.monotonic()
        while not stop.is_set():
            now_iso = datetime.now(UTC).isoformat()
            for _ in range(per_tick):
                service = f"svc-{sent % services}"
                body = {
                    "service": service,
                    "level": random.choice(levels),
                    "message": f"request {sent} handled in {random.randint(1, 900)} ms "
                    "by the bench's imaginary upstream",
                    "metadata": {"seq": sent, "region": "eu"},
                    "received_at": now_iso,
                }
                await producer.send(topic, orjson.dumps(body), key=service.encode())
                sent += 1
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        await producer.stop()
    return sent


@dataclass
class Row:
    clients: int
    produced_per_s: float
    delivered_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_pct: float
    rss_mib: float
    client_cpu_pct: float
    dropped: int


async def measure(
    clients: list[SseClient], window: Window, server: int, duration: float
) -> tuple[float, float, float]:
    """Measure for ``duration`` s; returns (server CPU %, server RSS MiB, client CPU %)."""
    me = os.getpid()
    cpu0, mine0, t0 = cpu_seconds(server), cpu_seconds(me), time.monotonic()
    window.latencies.clear()
    window.events = window.dropped = 0
    window.start, window.stop = time.time(), time.time() + duration
    await asyncio.sleep(duration)
    elapsed = time.monotonic() - t0
    cpu = (cpu_seconds(server) - cpu0) / elapsed * 100
    mine = (cpu_seconds(me) - mine0) / elapsed * 100
    return cpu, rss_mib(server), mine


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> list[Row]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    topic = f"bench.stream.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=STACK.kafka)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    proc = ServiceProcess(
        "stream",
        {
            "LOGRIVER_KAFKA_TOPIC": topic,
            "LOGRIVER_OTEL_ENABLED": "false",
            "LOGRIVER_LOG_LEVEL": "WARNING",
            "LOGRIVER_STREAM_MAX_SUBSCRIBERS": "100000",
            "LOGRIVER_STREAM_MAX_SUBSCRIBERS_PER_KEY": "100000",
            **dict(setting.split("=", 1) for setting in args.set),
        },
        tag=f"bench-{topic}",
    ).start()
    rows: list[Row] = []
    clients: list[SseClient] = []
    stop = asyncio.Event()
    producer: asyncio.Task[int] | None = None
    try:
        proc.wait_ready()
        if proc.proc is None:
            raise RuntimeError("the stream instance did not start")
        server = proc.proc.pid
        rss_before = rss_mib(server)
        window = Window(start=float("inf"))
        producer = asyncio.create_task(produce(topic, args.rate, args.services, stop))
        steps = [args.clients] if args.no_step_up else _steps(args.clients, args.max_clients)
        print(
            f"stream bench: {args.rate} events/s over {args.services} services, "
            f"{args.duration:.0f} s per step, instance RSS at start {rss_before:.0f} MiB, "
            f"fd limit {hard} (was {soft})"
        )
        for target in steps:
            while len(clients) < target:
                batch = []
                for _ in range(min(100, target - len(clients))):
                    service = f"svc-{len(clients) % args.services}"
                    client = SseClient(proc.port, service, window)
                    client.start()
                    batch.append(client)
                    clients.append(client)
                async with asyncio.timeout(60):
                    await asyncio.gather(*(c.opened.wait() for c in batch))
            await asyncio.sleep(args.warmup)  # let queues settle after the connect burst
            cpu, rss, mine = await measure(clients, window, server, args.duration)
            row = Row(
                clients=target,
                produced_per_s=args.rate,
                delivered_per_s=window.events / args.duration,
                p50_ms=percentile(window.latencies, 0.5) * 1000,
                p99_ms=percentile(window.latencies, 0.99) * 1000,
                cpu_pct=cpu,
                rss_mib=rss,
                client_cpu_pct=mine,
                dropped=window.dropped,
            )
            rows.append(row)
            print(_format(row), flush=True)
            if row.p99_ms > 1000 and target >= args.clients:
                break  # past 1 s, and the headline client count has been measured
    finally:
        stop.set()
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer
        await asyncio.gather(*(c.stop() for c in clients))
        proc.terminate()
        await admin.delete_topics([topic])
        await admin.close()
    return rows


def _steps(headline: int, most: int) -> list[int]:
    """250, 500, then every 500 up to ``most``, always including ``headline``."""
    steps = sorted({headline, 250, *range(500, most + 1, 500)})
    return [s for s in steps if s <= max(most, headline)]


_HEADER = (
    f"{'clients':>8} {'events/s':>9} {'delivered/s':>12} {'p50 ms':>8} {'p99 ms':>8} "
    f"{'inst CPU%':>9} {'inst RSS MiB':>12} {'bench CPU%':>10} {'dropped':>8}"
)


def _format(row: Row) -> str:
    return (
        f"{row.clients:>8} {row.produced_per_s:>9.0f} {row.delivered_per_s:>12.0f} "
        f"{row.p50_ms:>8.1f} {row.p99_ms:>8.1f} {row.cpu_pct:>9.0f} {row.rss_mib:>12.0f} "
        f"{row.client_cpu_pct:>10.0f} {row.dropped:>8}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--rate", type=int, default=2_000, help="events produced per second")
    parser.add_argument("--services", type=int, default=50, help="services; one per client")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per step")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--max-clients", type=int, default=5_000)
    parser.add_argument("--no-step-up", action="store_true")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra setting for the stream instance (e.g. LOGRIVER_STREAM_FETCH_MIN_BYTES=1)",
    )
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    print()
    print(_HEADER)
    for row in rows:
        print(_format(row))
    held = [r.clients for r in rows if r.p99_ms <= 1000]
    passed = bool(rows) and rows[-1].p99_ms > 1000
    note = "" if passed else " (the largest step tried; p99 never passed 1 s)"
    print(f"\none instance held {max(held) if held else 0} clients with p99 <= 1 s{note}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    figures: dict[str, Figure] = {}
    for row in rows:
        figures[f"{row.clients} clients p50 ms"] = round(row.p50_ms, 1)
        figures[f"{row.clients} clients p99 ms"] = round(row.p99_ms, 1)
        figures[f"{row.clients} clients instance CPU %"] = round(row.cpu_pct)
        figures[f"{row.clients} clients instance RSS MiB"] = round(row.rss_mib)
        figures[f"{row.clients} clients dropped"] = row.dropped
    figures["clients held with p99 <= 1 s"] = f"{max(held) if held else 0}{note}"
    publish_figures(
        "stream", figures, notes=f"{args.rate} events/s produced; ingest-to-delivery latency"
    )


if __name__ == "__main__":
    main()
