"""Two stream instances on one private topic, shared by every test in this package.

Starting an instance costs a few seconds of the two shared cores, so the
instances live for the package; each test isolates itself with its own service
names (every subscription filters on them).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.processes import ServiceProcess
from tests.stack import STACK


def stream_env(topic: str, **settings: str) -> dict[str, str]:
    return {
        "LOGRIVER_KAFKA_TOPIC": topic,
        "LOGRIVER_OTEL_ENABLED": "false",
        "LOGRIVER_STREAM_HEARTBEAT_SECONDS": "0.5",
        **{f"LOGRIVER_STREAM_{k.upper()}": v for k, v in settings.items()},
    }


@pytest.fixture(scope="package")
async def stream_topic(stack: None) -> AsyncIterator[str]:
    topic = f"test.logs.stream.{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=STACK.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
        yield topic
        await admin.delete_topics([topic])
    finally:
        await admin.close()


@dataclass(frozen=True)
class Instances:
    topic: str
    a: ServiceProcess
    b: ServiceProcess


@pytest.fixture(scope="package")
def instances(stream_topic: str) -> Iterator[Instances]:
    tag = uuid.uuid4().hex[:8]
    a = ServiceProcess("stream", stream_env(stream_topic), tag=f"{tag}-a").start()
    b = ServiceProcess("stream", stream_env(stream_topic), tag=f"{tag}-b").start()
    try:
        a.wait_ready()
        b.wait_ready()
        yield Instances(stream_topic, a, b)
    finally:
        a.kill()
        b.kill()


@pytest.fixture
def run_id() -> str:
    """A prefix for this test's service names."""
    return f"t{uuid.uuid4().hex[:8]}"
