"""Alerter evaluation throughput and notification latency.

    uv run python -m bench.alerter_bench [--events 300000] [--bursts 5]

A throw-away topic (6 partitions) is pre-filled with events from 50 services
(timestamps "now", about 2% errors, so rules are evaluated but stay quiet).
One alerter process (``python -m logriver_alerter``) with 100 rules over those
services (single names, globs and ``*``; 60 s windows) then reads it at full
speed: "events/s evaluated" is the rate at which it counted the backlog while
ticking every rule over every service, read from its own metrics.

Then, with the backlog gone, bursts of errors are sent to services that a
5-second error-rate rule watches, one at a time; the latency is from the first
error produced to the firing notification arriving at a local webhook
receiver. The target is window + 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

from bench.proc import cpu_seconds
from bench.results import publish_figures
from bench.service_metrics import metric
from logriver_alerter.rules import ChannelSpec, RuleSpec
from logriver_alerter.store import migrate, postgres_repositories
from logriver_common.auth import DEV_KEY
from logriver_common.event import Level, LogEvent
from tests.integration.alerter.receivers import Receiver, webhook_handler
from tests.processes import ServiceProcess

KAFKA = os.environ.get("LOGRIVER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
POSTGRES = os.environ.get(
    "LOGRIVER_POSTGRES_DSN", "postgresql://logriver:logriver@127.0.0.1:5432/logriver"
)
MONGO = os.environ.get(
    "LOGRIVER_MONGO_URI",
    "mongodb://127.0.0.1:27017,127.0.0.1:27018,127.0.0.1:27019/?replicaSet=rs0",
)
SERVICES = 50
RULES = 100
BURST_WINDOW_S = 5


def rules(tag: str) -> list[dict[str, Any]]:
    """100 rules: per-service rate and count rules, globs over groups, and catch-alls."""
    out: list[dict[str, Any]] = []
    for i in range(SERVICES):
        out.append(
            {
                "name": f"rate svc{i}",
                "services": [f"{tag}-svc{i}"],
                "condition": {"type": "error_rate", "threshold": 0.5},
                "window_seconds": 60,
                "min_events": 20,
                "channels": ["hook"],
            }
        )
    for i in range(40):
        out.append(
            {
                "name": f"count group{i}",
                "services": [f"{tag}-svc{i % 10}*"],
                "condition": {"type": "count", "level": "CRITICAL", "threshold": 10_000},
                "window_seconds": 60,
                "min_events": 1,
                "channels": ["hook"],
            }
        )
    for i in range(RULES - len(out)):
        out.append(
            {
                "name": f"everything {i}",
                "services": ["*"],
                "condition": {"type": "error_rate", "level": "CRITICAL", "threshold": 0.9},
                "window_seconds": 30 + i,
                "min_events": 100,
                "channels": ["hook"],
            }
        )
    # The burst rules replace the 5 first per-service rules: short windows, quick to fire.
    for i in range(5):
        out[i] = {**out[i], "window_seconds": BURST_WINDOW_S, "min_events": 20}
    return out


async def prefill(topic: str, tag: str, count: int) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA, acks="all", linger_ms=20, compression_type="lz4",
        max_batch_size=512 * 1024,
    )  # fmt: skip
    await producer.start()
    started = time.perf_counter()
    try:
        now = datetime.now(UTC)
        pending = []
        for n in range(count):
            service = f"{tag}-svc{n % SERVICES}"
            level = Level.ERROR if n % 50 == 0 else Level.INFO
            event = LogEvent(
                service=service, level=level, message=f"request {n % 97} handled",
                timestamp=now - timedelta(microseconds=count - n), received_at=now,
            )  # fmt: skip
            pending.append(await producer.send(topic, event.to_json(), key=service.encode()))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def sample_until(
    api: httpx.AsyncClient, events: int, proc: ServiceProcess
) -> list[tuple[float, float, float]]:
    """(time, events counted, the alerter's CPU seconds) until the backlog is counted."""
    samples: list[tuple[float, float, float]] = []
    pid = proc.proc.pid if proc.proc is not None else 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if not proc.running():
            raise SystemExit(f"bench: the alerter exited:\n{proc.tail()}")
        try:
            count = await metric(api, "logriver_alerter_events_total{")
        except httpx.HTTPError:
            await asyncio.sleep(0.02)
            continue
        samples.append((time.perf_counter(), count, cpu_seconds(pid)))
        if count >= events:
            return samples
        await asyncio.sleep(0.2)  # /metrics runs on the alerter's loop: do not crowd it
    raise SystemExit("bench: backlog not read within 300s")


async def wait_for(probe: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise SystemExit(f"bench: {what} not reached within {within}s")


async def run(events: int, bursts: int) -> None:
    tag = uuid.uuid4().hex[:8]
    topic, schema, database = f"bench.alerter.{tag}", f"bench_alerter_{tag}", f"bench_{tag}"
    dsn = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    pg = await asyncpg.connect(POSTGRES)
    await pg.execute(f'CREATE SCHEMA "{schema}"')
    receiver = await Receiver(webhook_handler()).start()
    proc: ServiceProcess | None = None
    try:
        prefill_s = await prefill(topic, tag, events)
        print(f"pre-filled {events} events in {prefill_s:.1f}s")
        # The rules exist before the alerter starts, so the whole backlog is read while
        # every tick evaluates all of them.
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        assert pool is not None  # noqa: S101
        await migrate(pool)
        store = postgres_repositories(pool)
        await store.channels.put(
            "hook", ChannelSpec.model_validate({"type": "webhook", "url": receiver.url})
        )
        for rule in rules(tag):
            await store.rules.create(RuleSpec.model_validate(rule))
        await pool.close()
        proc = ServiceProcess(
            "alerter",
            {
                "LOGRIVER_KAFKA_TOPIC": topic,
                "LOGRIVER_MONGO_DATABASE": database,
                "LOGRIVER_POSTGRES_DSN": dsn,
                "LOGRIVER_OTEL_ENABLED": "false",
                "LOGRIVER_ALERTER_GROUP_ID": f"bench-{tag}",
                "LOGRIVER_ALERTER_RULES_REFRESH_S": "1",
            },
            tag=f"bench-{tag}",
        ).start()
        async with httpx.AsyncClient(
            base_url=proc.url, headers={"Authorization": f"Bearer {DEV_KEY}"}, timeout=30
        ) as api:
            # Sample the counter from the moment the process answers (it starts reading
            # before it reports ready) until the whole backlog is counted.
            samples = await sample_until(api, events, proc)
            await asyncio.to_thread(proc.wait_ready)
            started_at = next(sample for sample in samples if sample[1] > 0)
            if started_at[1] >= events:
                raise SystemExit(
                    "bench: the backlog was read before the first sample; use more --events"
                )
            counted = events - started_at[1]
            rate = counted / (samples[-1][0] - started_at[0])
            # Includes the ticks that ran during the read: what the alerter costs per event.
            cpu_us = (samples[-1][2] - started_at[2]) * 1e6 / counted
            late = await metric(api, 'logriver_alerter_events_total{outcome="late"}')
            evaluations = await metric(api, "logriver_alerter_evaluations_total")
            tick_sum = await metric(api, "logriver_alerter_tick_seconds_sum")
            ticks = await metric(api, "logriver_alerter_tick_seconds_count")
            status = (await api.get("/v1/status")).json()

            latencies = []
            producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", linger_ms=0)
            await producer.start()
            try:
                for i in range(bursts):
                    service = f"{tag}-svc{i % 5}"
                    seen = len(receiver.accepted)
                    started = time.monotonic()
                    for _ in range(40):
                        event = LogEvent(
                            service=service, level=Level.ERROR, message="upstream timeout"
                        )
                        await producer.send(topic, event.to_json(), key=service.encode())
                    await producer.flush()
                    await wait_for(
                        lambda seen=seen: _true(len(receiver.accepted) > seen), 30, "notification"
                    )
                    latencies.append(receiver.accepted[-1].at - started)
            finally:
                await producer.stop()
    finally:
        if proc is not None:
            proc.kill()
        await receiver.close()
        await pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await pg.close()
        await admin.delete_topics([topic])
        await admin.close()
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGO)
        await mongo.drop_database(database)
        await mongo.close()

    rows = [
        ("events in backlog", f"{events}"),
        ("services / rules", f"{SERVICES} / {status['rules']}"),
        ("events/s evaluated (backlog read)", f"{rate:,.0f}"),
        ("alerter CPU per event (read, ticks)", f"{cpu_us:.1f} µs"),
        ("of which too late for any window", f"{late:,.0f}"),
        ("ticks during the read", f"{ticks:,.0f}"),
        ("rule evaluations during the read", f"{evaluations:,.0f}"),
        ("mean tick (100 rules x 50 services)", f"{1000 * tick_sum / max(ticks, 1):.1f} ms"),
        ("bursts", f"{bursts} x 40 errors, window {BURST_WINDOW_S}s"),
        ("first error -> notification, median", f"{statistics.median(latencies):.2f} s"),
        ("first error -> notification, max", f"{max(latencies):.2f} s"),
        ("target", f"<= window + 2 s = {BURST_WINDOW_S + 2} s"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"\n{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 20}")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    publish_figures("alerter", dict(rows), notes="100 rules over 50 services")


async def _ge(probe: Any, target: int) -> bool:
    return bool(await probe() >= target)


async def _true(value: bool) -> bool:
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--bursts", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.events, args.bursts))


if __name__ == "__main__":
    main()
