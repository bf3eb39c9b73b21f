"""MongoDB misbehaving: a primary step-down, an outage, and the TTL monitor deleting."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect, ConnectionFailure
from pymongo.read_concern import ReadConcern

from logriver_common import clients
from logriver_common.consumer_kit.dead_letters import DeadLetterQueue
from logriver_common.settings import KafkaSettings, MongoSettings
from logriver_writer.consumer import WriterConsumer
from logriver_writer.settings import WriterSettings
from tests.conftest import StartService, Topics
from tests.integration.writer.helpers import (
    MongoClient,
    count_logs,
    make_events,
    metric,
    mongo,
    produce_events,
    stored_ids,
    writer_env,
)
from tests.stack import STACK, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

MEMBERS = ("127.0.0.1:27017", "127.0.0.1:27018", "127.0.0.1:27019")


async def _primary(client: MongoClient) -> str | None:
    try:
        hello = await client.admin.command("hello")
    except ConnectionFailure:
        return None
    primary = hello.get("primary")
    return str(primary) if primary and hello.get("setName") == "rs0" else None


async def _stored(client: MongoClient, database: str, count: int) -> bool:
    return await count_logs(client, database) >= count


async def test_primary_step_down_during_sustained_writes_loses_and_duplicates_nothing(
    topics: Topics, mongo_database: str, service_process: StartService
) -> None:
    events = make_events(40_000, prefix="failover")
    writer = service_process("writer", env=writer_env(topics, mongo_database, batch_max_events=500))
    client = mongo()
    try:
        old_primary = await eventually(lambda: _primary(client), what="a primary")

        async def produce_steadily() -> None:
            for start in range(0, len(events), 2_000):
                await produce_events(topics.main, events[start : start + 2_000])

        producing = asyncio.create_task(produce_steadily())
        await eventually(
            lambda: _stored(client, mongo_database, 6_000), interval=0.1, what="writes under way"
        )
        assert not producing.done(), "the load ended before the step-down"
        # The old primary may not stand again for 10 s, so the election picks another; it
        # drops its connections as it steps down, which may fail this very command.
        with contextlib.suppress(ConnectionFailure):
            await client.admin.command("replSetStepDown", 10)
        await producing

        new_primary = await eventually(
            lambda: _primary(client), within=60, what="a new primary after the step-down"
        )
        await eventually(
            lambda: _stored(client, mongo_database, len(events)),
            within=90,
            what="every event stored after the failover",
        )
        ids = await stored_ids(client, mongo_database)
    finally:
        await client.close()

    assert new_primary != old_primary
    assert len(ids) == len(events)
    assert set(ids) == {event.id for event in events}
    written = await metric(writer.url, "logriver_writer_events_written_total")
    duplicates = await metric(writer.url, "logriver_writer_duplicates_skipped_total")
    assert written + duplicates >= len(events)


class Outage:
    """Shared switch: while ``down``, every insert fails as if no member were reachable."""

    def __init__(self) -> None:
        self.down = True
        self.attempts = 0


class FlakyCollection:
    """Wraps a real collection; writes fail while the outage lasts."""

    def __init__(self, real: Any, outage: Outage) -> None:
        self.real = real
        self.outage = outage

    def with_options(self, **options: Any) -> FlakyCollection:
        return FlakyCollection(self.real.with_options(**options), self.outage)

    async def insert_many(self, documents: list[dict[str, Any]], **options: Any) -> Any:
        self.outage.attempts += 1
        if self.outage.down:
            raise AutoReconnect("connection refused (simulated outage)")
        return await self.real.insert_many(documents, **options)

    def __getattr__(self, name: str) -> Any:
        # name, database, find: the writer's transaction needs the real ones.
        return getattr(self.real, name)


async def test_while_mongodb_is_down_the_consumer_pauses_then_resumes(
    topics: Topics, mongo_database: str
) -> None:
    settings = WriterSettings(
        kafka=KafkaSettings(bootstrap_servers=STACK.kafka, topic=topics.main, dlq_topic=topics.dlq),
        mongo=MongoSettings(database=mongo_database),
        group_id=f"writer-{mongo_database}",
        batch_max_events=500,
        retry_initial_backoff_s=0.05,
        retry_max_backoff_s=0.5,
        session_timeout_ms=6_000,
    )
    events = make_events(5_000, prefix="outage")
    await produce_events(topics.main, events)
    outage = Outage()
    client = mongo()
    producer = clients.kafka_producer(settings.kafka)
    await producer.start()
    writer = WriterConsumer(
        settings=settings,
        consumer=clients.kafka_consumer(settings.kafka, group_id=settings.group_id),
        dlq=DeadLetterQueue(producer, topics.dlq),
        collection=cast(
            AsyncCollection[dict[str, Any]], FlakyCollection(client[mongo_database]["logs"], outage)
        ),
    )
    running = asyncio.create_task(writer.run())
    try:
        await eventually(lambda: _paused(writer), what="partitions paused during the outage")
        # Waiting, not spinning: once the backoff reaches its cap (0.5 s ± 20%), three more
        # attempts take at least 1.2 s.
        await eventually(lambda: _attempts_at_least(outage, 6), what="backoff at its cap")
        started, before = time.monotonic(), outage.attempts
        await eventually(lambda: _attempts_at_least(outage, before + 3), what="three retries")
        assert time.monotonic() - started >= 1.0
        assert writer.buffered <= settings.batch_max_events
        assert writer.paused
        assert await count_logs(client, mongo_database) == 0

        outage.down = False
        await eventually(
            lambda: _stored(client, mongo_database, len(events)), what="stored after recovery"
        )
        await eventually(lambda: _resumed(writer), what="partitions resumed")
        ids = await stored_ids(client, mongo_database)
    finally:
        writer.request_stop()
        assert await asyncio.wait_for(running, timeout=30) is None
        await producer.stop()
        await client.close()
    assert set(ids) == {event.id for event in events}
    assert len(ids) == len(events)


async def _attempts_at_least(outage: Outage, count: int) -> bool:
    return outage.attempts >= count


async def _paused(writer: WriterConsumer) -> bool:
    return writer.paused


async def _resumed(writer: WriterConsumer) -> bool:
    return not writer.paused


async def _set_ttl_monitor_sleep(seconds: int) -> None:
    for member in MEMBERS:
        direct: MongoClient = AsyncMongoClient(f"mongodb://{member}/?directConnection=true")
        try:
            await direct.admin.command({"setParameter": 1, "ttlMonitorSleepSecs": seconds})
        finally:
            await direct.close()


async def test_retention_policy_lets_the_ttl_monitor_delete_expired_events(
    topics: Topics, mongo_database: str, service_process: StartService
) -> None:
    policy = {"default": "P1D", "services": {"ephemeral": {"default": "PT2S"}}}
    env = writer_env(topics, mongo_database)
    env["LOGRIVER_RETENTION"] = orjson.dumps(policy).decode()
    # Stamped a little ahead: they expire 2 s after their timestamp, and the writer's
    # start-up alone can take that long; the first check below must find one stored.
    ahead = datetime.now(UTC) + timedelta(seconds=8)
    ephemeral = [
        event.model_copy(update={"service": "ephemeral", "timestamp": ahead})
        for event in make_events(20, prefix="ephemeral")
    ]
    durable = make_events(20, prefix="durable")
    await _set_ttl_monitor_sleep(1)
    client = mongo()
    try:
        service_process("writer", env=env)
        await produce_events(topics.main, [*ephemeral, *durable])
        logs = client[mongo_database].get_collection("logs", read_concern=ReadConcern("majority"))
        sample = await eventually(
            lambda: logs.find_one({"_id": "ephemeral-0"}), what="an ephemeral event stored"
        )
        assert sample["expire_at"] == sample["timestamp"] + timedelta(seconds=2)
        await eventually(
            lambda: _stored(client, mongo_database, 21), what="the durable events stored"
        )

        async def ephemeral_gone() -> bool:
            return await logs.count_documents({"service": "ephemeral"}) == 0

        await eventually(ephemeral_gone, within=60, interval=0.5, what="TTL deletion")
        kept = await logs.find_one({"_id": "durable-0"})
        durable_left = await logs.count_documents({"_id": {"$regex": "^durable-"}})
    finally:
        await _set_ttl_monitor_sleep(60)
        await client.close()
    assert durable_left == len(durable)
    assert kept is not None
    assert kept["expire_at"] == kept["timestamp"] + timedelta(days=1)
