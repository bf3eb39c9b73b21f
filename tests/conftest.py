"""Shared fixtures. Integration tests use the running local stack (``make up``) and
start it when it is not running; each test isolates itself with unique names."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

from tests.processes import ServiceProcess
from tests.stack import STACK, stack_is_up


@pytest.fixture(scope="session")
def stack() -> None:
    """The real local stack: Kafka, MongoDB rs0, Redis, PostgreSQL, Jaeger."""
    if not stack_is_up():
        subprocess.run(
            [sys.executable, "-m", "devstack", "up", "--no-services"], check=True, timeout=900
        )
    assert stack_is_up(), f"the local stack is not reachable: {STACK}"


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, database and service names."""
    return uuid.uuid4().hex[:10]


StartService = Callable[..., ServiceProcess]


@pytest.fixture
def service_process(stack: None, unique: str) -> Iterator[StartService]:
    """Start services as subprocesses: ``service_process("writer", env={...})``.

    Returns a ready process; every process is killed when the test ends.
    """
    started: list[ServiceProcess] = []

    def start(
        name: str, env: Mapping[str, str] | None = None, *, wait: bool = True
    ) -> ServiceProcess:
        proc = ServiceProcess(name, env, tag=f"{unique}-{len(started)}").start()
        started.append(proc)
        return proc.wait_ready() if wait else proc

    yield start
    for proc in started:
        proc.kill()


@dataclass(frozen=True)
class Topics:
    """A private copy of the pipeline's topics for one test."""

    main: str
    dlq: str
    raw: str

    def env(self) -> dict[str, str]:
        """Environment that points a service at these topics."""
        return {
            "LOGRIVER_KAFKA_TOPIC": self.main,
            "LOGRIVER_KAFKA_DLQ_TOPIC": self.dlq,
            "LOGRIVER_KAFKA_RAW_TOPIC": self.raw,
        }

    async def create(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=STACK.kafka)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(self.main, num_partitions=6, replication_factor=1),
                    NewTopic(self.dlq, num_partitions=1, replication_factor=1),
                    NewTopic(self.raw, num_partitions=6, replication_factor=1),
                ]
            )
        finally:
            await admin.close()

    async def delete(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=STACK.kafka)
        await admin.start()
        try:
            await admin.delete_topics([self.main, self.dlq, self.raw])
        finally:
            await admin.close()

    @classmethod
    def named(cls, unique: str) -> Topics:
        return cls(
            main=f"test.logs.{unique}",
            dlq=f"test.logs.{unique}.dlq",
            raw=f"test.logs.{unique}.raw",
        )


@pytest.fixture
async def topics(stack: None, unique: str) -> AsyncIterator[Topics]:
    """Unique ``logs.<id>`` (6 partitions, like logs.v1), ``.dlq`` and ``.raw``, deleted after."""
    names = Topics.named(unique)
    await names.create()
    try:
        yield names
    finally:
        await names.delete()


@pytest.fixture
async def mongo_database(stack: None, unique: str) -> AsyncIterator[str]:
    """A unique MongoDB database name, dropped after the test."""
    name = f"test_{unique}"
    yield name
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(STACK.mongo_uri)
    try:
        await client.drop_database(name)
    finally:
        await client.close()


@pytest.fixture
async def postgres_dsn(stack: None, unique: str) -> AsyncIterator[str]:
    """A DSN whose ``search_path`` is a private schema, dropped after the test.

    Services and pools opened with it create their tables (migrations, API keys,
    alert state) in that schema, so tests never touch shared rows.
    """
    schema = f"test_{unique}"
    admin = await asyncpg.connect(STACK.postgres_dsn)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield f"{STACK.postgres_dsn}?options=-csearch_path%3D{schema}"
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
