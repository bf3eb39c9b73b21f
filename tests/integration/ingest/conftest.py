"""Fixtures for the ingest gateway against the real stack: keys in PostgreSQL, an
in-process gateway with its real producer, and a reader of the test's topic."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from logriver_common.auth import ApiKeyStore, Scope
from logriver_common.settings import KafkaSettings, TelemetrySettings
from logriver_ingest.app import create_app
from logriver_ingest.settings import IngestSettings
from tests.conftest import Topics
from tests.stack import STACK, eventually


@dataclass(frozen=True)
class Record:
    """A consumed Kafka record (aiokafka's own type is untyped)."""

    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: dict[str, bytes]

    @classmethod
    def of(cls, record: Any) -> Record:
        return cls(
            partition=record.partition,
            offset=record.offset,
            key=record.key or b"",
            value=record.value or b"",
            headers={k: v for k, v in record.headers},
        )


@dataclass(frozen=True)
class Keys:
    ingest: str
    read_only: str


@pytest.fixture
async def pg_pool(stack: None) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(STACK.postgres_dsn, min_size=1, max_size=2)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
async def keys(pg_pool: asyncpg.Pool, unique: str) -> AsyncIterator[Keys]:
    """Keys of this test's own (not the shared development key, which other tests revoke)."""
    store = ApiKeyStore(pg_pool)
    await store.prepare(local_mode=True)
    ingest, ingest_plain = await store.create(f"test-ingest-{unique}", {Scope.INGEST})
    read, read_plain = await store.create(f"test-read-{unique}", {Scope.READ})
    yield Keys(ingest=ingest_plain, read_only=read_plain)
    await store.revoke(ingest.id)
    await store.revoke(read.id)


def settings_for(topics: Topics, **overrides: Any) -> IngestSettings:
    # No OTLP/gRPC listener unless a test asks for one: 4319 may be the stack's gateway's.
    overrides.setdefault("grpc_port", 0)
    return IngestSettings(
        kafka=KafkaSettings(topic=topics.main, dlq_topic=topics.dlq),
        telemetry=TelemetrySettings(enabled=False),
        **overrides,
    )


OpenGateway = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def gateway(topics: Topics, keys: Keys) -> OpenGateway:
    """``async with gateway(**settings) as http:`` an in-process gateway (lifespan run,
    real producer, PostgreSQL and Redis) behind an httpx client holding the ingest key."""

    @asynccontextmanager
    async def open_gateway(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings_for(topics, **overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://ingest",
                headers={"Authorization": f"Bearer {keys.ingest}"},
                timeout=30,
            ) as http:
                yield http

    return open_gateway


async def read_topic(
    topic: str, *, expect: int, bootstrap: str = STACK.kafka, within: float = 30.0
) -> list[Record]:
    """Every record of ``topic`` from the beginning, polled until ``expect`` are there;
    then read on to the end offsets, so records beyond those expected show up too."""
    # No group: the consumer is assigned every partition and starts at the earliest offset.
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        records: list[Record] = []

        async def enough() -> bool:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(Record.of(r) for r in batch)
            return len(records) >= expect and bool(consumer.assignment())

        await eventually(enough, within=within, what=f"{expect} records in {topic}")
        partitions = list(consumer.assignment())
        end = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(Record.of(r) for r in batch)
        return records
    finally:
        await consumer.stop()


async def topic_size(topic: str, bootstrap: str = STACK.kafka) -> int:
    """How many records the topic holds (the sum of end offsets; it starts empty)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:

        async def assigned() -> list[TopicPartition] | None:
            await consumer.getmany(timeout_ms=100)
            return list(consumer.assignment()) or None

        partitions = await eventually(assigned, within=15, what=f"partitions of {topic}")
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()
