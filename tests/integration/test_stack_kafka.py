"""The real broker: produce and consume through a consumer group with committed offsets."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from logriver_common import clients
from logriver_common.event import LogEvent
from logriver_common.settings import KafkaSettings
from tests.conftest import Topics
from tests.stack import STACK

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]


async def test_logs_topics_exist_with_six_partitions() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=STACK.kafka)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics(["logs.v1", "logs.v1.dlq"])}
    finally:
        await admin.close()
    assert described["logs.v1"]["error_code"] == 0
    assert len(described["logs.v1"]["partitions"]) == 6
    assert described["logs.v1.dlq"]["error_code"] == 0


async def test_produce_consume_with_group_and_committed_offsets(
    topics: Topics, unique: str
) -> None:
    topic = topics.main
    settings = KafkaSettings(bootstrap_servers=STACK.kafka, topic=topic)
    producer = clients.kafka_producer(settings)
    await producer.start()
    events = [LogEvent(service=f"svc-{i % 3}", message=f"m{i}") for i in range(30)]
    try:
        for event in events:
            await producer.send_and_wait(
                topic, event.to_json(), key=event.service.encode(), headers=[("x-test", b"1")]
            )
    finally:
        await producer.stop()

    group = f"test-group-{unique}"
    consumer = clients.kafka_consumer(settings, topic, group_id=group)
    await consumer.start()
    seen: dict[str, LogEvent] = {}
    try:
        while len(seen) < len(events):
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    event = LogEvent.model_validate_json(record.value)
                    assert record.key == event.service.encode()
                    assert ("x-test", b"1") in list(record.headers)
                    seen[event.id] = event
        await consumer.commit()
        committed = {
            tp.partition: await consumer.committed(tp)
            for tp in (TopicPartition(topic, p) for p in range(6))
        }
    finally:
        await consumer.stop()

    assert set(seen) == {e.id for e in events}
    assert sum(off or 0 for off in committed.values()) == len(events)
    # One service's events share a key, so they land on one partition in order.
    for svc in ("svc-0", "svc-1", "svc-2"):
        order = [e.message for e in events if e.service == svc]
        assert [e.message for e in seen.values() if e.service == svc] == order

    # A new member of the same group resumes at the committed offsets: nothing is redelivered.
    again = clients.kafka_consumer(settings, topic, group_id=group)
    await again.start()
    try:
        redelivered = await again.getmany(timeout_ms=2000)
        assert sum(len(r) for r in redelivered.values()) == 0
    finally:
        await again.stop()


async def test_producer_readiness_notices_a_dead_sender() -> None:
    """A producer whose sender died must not pass /readyz just because metadata works."""
    producer = clients.kafka_producer(KafkaSettings(bootstrap_servers=STACK.kafka))
    await producer.start()
    try:
        await clients.check_kafka_producer(producer)
        # What a fatal send error does inside aiokafka: the sender task ends.
        sender = producer._sender.sender_task
        sender.cancel()
        await asyncio.wait([sender])
        with pytest.raises(ConnectionError, match="sender has stopped"):
            await clients.check_kafka_producer(producer)
    finally:
        await producer.stop()
