"""Producing, counting and metrics helpers shared by the writer's integration tests."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient
from pymongo.read_concern import ReadConcern

from logriver_common import clients
from logriver_common.event import LogEvent
from logriver_common.settings import KafkaSettings
from tests.conftest import Topics
from tests.metrics import metric_value
from tests.stack import STACK

Headers = Sequence[tuple[str, bytes]]
RawRecord = tuple[bytes | None, bytes | None, Headers]  # key, value, headers
MongoClient = AsyncMongoClient[dict[str, Any]]


def writer_env(topics: Topics, database: str, **settings: Any) -> dict[str, str]:
    """Point a writer process at private topics, database and consumer group."""
    env = {
        **topics.env(),
        "LOGRIVER_MONGO_DATABASE": database,
        "LOGRIVER_WRITER_GROUP_ID": f"writer-{database}",
        "LOGRIVER_WRITER_SESSION_TIMEOUT_MS": "6000",
        "LOGRIVER_WRITER_LAG_INTERVAL_S": "1",
    }
    env.update({f"LOGRIVER_WRITER_{key.upper()}": str(value) for key, value in settings.items()})
    return env


def make_events(count: int, *, prefix: str, with_ids: bool = True) -> list[LogEvent]:
    levels = ("DEBUG", "INFO", "WARNING", "ERROR")
    events = []
    for i in range(count):
        fields: dict[str, Any] = {
            "service": f"svc-{i % 7}",
            "level": levels[i % 4],
            "message": f"{prefix} event {i}",
            "metadata": {"n": i},
            "received_at": datetime.now(UTC),
        }
        if with_ids:
            fields["id"] = f"{prefix}-{i}"
        events.append(LogEvent.model_validate(fields))
    return events


async def produce_events(
    topic: str, events: Iterable[LogEvent], *, chunk: int = 5_000
) -> list[bytes]:
    """Produce (key = service) in acked chunks; returns the values in production order."""
    values = [event.to_json() for event in events]
    producer = clients.kafka_producer(
        KafkaSettings(bootstrap_servers=STACK.kafka), linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        services = [event_service(value) for value in values]
        for start in range(0, len(values), chunk):
            acks = [
                await producer.send(topic, value, key=service.encode())
                for value, service in zip(
                    values[start : start + chunk], services[start : start + chunk], strict=True
                )
            ]
            await asyncio.gather(*acks)
    finally:
        await producer.stop()
    return values


def event_service(value: bytes) -> str:
    match = re.search(rb'"service":"([^"]+)"', value)
    assert match is not None
    return match.group(1).decode()


async def produce_raw(topic: str, records: Sequence[RawRecord]) -> list[tuple[int, int]]:
    """Produce records as given, one partition (0) so their order is known; (partition, offset)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=STACK.kafka, acks="all", max_request_size=2 * 1024 * 1024
    )
    await producer.start()
    try:
        positions = []
        for key, value, headers in records:
            meta = await producer.send_and_wait(
                topic, value, key=key, headers=list(headers), partition=0
            )
            positions.append((meta.partition, meta.offset))
        return positions
    finally:
        await producer.stop()


def mongo() -> MongoClient:
    return AsyncMongoClient(STACK.mongo_uri, tz_aware=True)


async def stored_at_least(client: MongoClient, database: str, count: int) -> int | None:
    """The stored count once it reaches ``count`` (for ``eventually``), else None."""
    stored = await count_logs(client, database)
    return stored if stored >= count else None


async def count_logs(client: MongoClient, database: str) -> int:
    # Majority reads: counted documents are the ones that survive a failover.
    collection = client[database].get_collection("logs", read_concern=ReadConcern("majority"))
    return await collection.count_documents({})


async def stored_ids(client: MongoClient, database: str) -> list[str]:
    collection = client[database].get_collection("logs", read_concern=ReadConcern("majority"))
    return [doc["_id"] async for doc in collection.find({}, {"_id": 1})]


async def committed_total(topic: str, group: str, partitions: int = 6) -> int:
    consumer = clients.kafka_consumer(KafkaSettings(bootstrap_servers=STACK.kafka), group_id=group)
    await consumer.start()
    try:
        total = 0
        for partition in range(partitions):
            total += await consumer.committed(TopicPartition(topic, partition)) or 0
        return total
    finally:
        await consumer.stop()


async def end_offsets_total(topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=STACK.kafka)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
        count = len(described[0]["partitions"])
    finally:
        await admin.close()
    consumer = clients.kafka_consumer(KafkaSettings(bootstrap_servers=STACK.kafka))
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(count)])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def metric(url: str, name: str, labels: str = "") -> float:
    """The sum of a metric's samples on a service's /metrics whose labels contain ``labels``."""
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{url}/metrics")).text
    return metric_value(text, name, labels, default=0.0)
