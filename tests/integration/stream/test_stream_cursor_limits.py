"""A resume id is checked against the topic and the ``since`` limit, never replayed from 0.

A private two-partition topic whose first records are two days old (Kafka
timestamps set by the producer), so the one-day ``since`` limit falls inside it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from logriver_stream.cursor import CursorCodec
from tests.integration.stream.clients import AUTH, EventProducer, SseReader, WsReader, event
from tests.integration.stream.conftest import stream_env
from tests.processes import ServiceProcess
from tests.stack import STACK

pytestmark = pytest.mark.integration

OLD = 5  # records on partition 0 stamped two days ago: offsets 0..4
RECENT = 3  # then on each partition: partition 0 offsets 5..7, partition 1 offsets 0..2


@dataclass(frozen=True)
class Aged:
    topic: str
    service: str  # the service name of every event in the topic
    stream: ServiceProcess


@pytest.fixture(scope="module")
async def aged(stack: None) -> AsyncIterator[Aged]:
    tag = uuid.uuid4().hex[:10]
    topic, service = f"test.logs.aged.{tag}", f"aged-{tag}"
    admin = AIOKafkaAdminClient(bootstrap_servers=STACK.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        now_ms = int(time.time() * 1000)
        async with EventProducer(topic) as producer:
            await producer.send_at(
                [event(service, seq, run=tag) for seq in range(OLD)],
                partition=0,
                timestamp_ms=now_ms - 2 * 86_400_000,
            )
            for partition in (0, 1):
                await producer.send_at(
                    [event(service, 100 * (partition + 1) + i, run=tag) for i in range(RECENT)],
                    partition=partition,
                    timestamp_ms=now_ms,
                )
        stream = ServiceProcess("stream", stream_env(topic), tag=f"aged-{tag}").start()
        try:
            stream.wait_ready()
            yield Aged(topic, service, stream)
        finally:
            stream.kill()
            await admin.delete_topics([topic])
    finally:
        await admin.close()


async def test_a_resume_within_the_limit_replays_exactly_what_follows(aged: Aged) -> None:
    codec = CursorCodec(aged.topic)
    headers = {**AUTH, "Last-Event-ID": codec.encode({0: OLD, 1: 0})}
    async with SseReader(aged.stream.url, {"service": aged.service}, headers=headers) as sse:
        await sse.wait_logs(2 * RECENT)
        assert sorted(e["metadata"]["seq"] for e in sse.logs) == [100, 101, 102, 200, 201, 202]
    # A partition the cursor does not name starts at the limit, not at offset 0.
    headers = {**AUTH, "Last-Event-ID": codec.encode({1: RECENT})}
    async with SseReader(aged.stream.url, {"service": aged.service}, headers=headers) as sse:
        await sse.wait_logs(RECENT)
        assert sorted(e["metadata"]["seq"] for e in sse.logs) == [100, 101, 102]


@pytest.mark.parametrize(
    "position",
    [
        {0: 0, 1: 0},  # the hand-made "replay everything" cursor of the issue
        {0: OLD - 1, 1: 0},  # one record too far back
    ],
)
async def test_a_resume_past_the_since_limit_is_refused_not_replayed(
    aged: Aged, position: dict[int, int]
) -> None:
    cursor = CursorCodec(aged.topic).encode(position)
    headers = {**AUTH, "Last-Event-ID": cursor}
    async with SseReader(aged.stream.url, {"service": aged.service}, headers=headers) as sse:
        await sse.wait_end()
        assert sse.status == 200  # said in the stream, where EventSource can read it
        assert sse.logs == []
        assert sse.errors[0]["error"] == "resume_expired"
        assert "replay limit" in sse.errors[0]["detail"]
    url = aged.stream.url.replace("http", "ws") + f"/v1/ws?service={aged.service}&resume={cursor}"
    async with WsReader(url) as ws:
        await ws.wait_closed()
        assert ws.close_code == 4410
        assert ws.events() == []


@pytest.mark.parametrize(
    ("position", "words"),
    [
        ({}, "no partition"),
        ({0: OLD, 2: 0}, "does not have"),
        ({0: OLD + RECENT + 1, 1: 0}, "ahead"),
        ({0: OLD, 1: 2**63 - 1}, "ahead"),
    ],
)
async def test_impossible_cursors_are_400(aged: Aged, position: dict[int, int], words: str) -> None:
    cursor = CursorCodec(aged.topic).encode(position)
    async with httpx.AsyncClient(base_url=aged.stream.url) as client:
        for request in (
            {"headers": {**AUTH, "Last-Event-ID": cursor}},
            {"headers": AUTH, "params": {"resume": cursor}},
        ):
            resp = await client.get("/v1/stream", **request)  # type: ignore[arg-type]
            assert resp.status_code == 400, resp.text
            body = resp.json()
            assert body["error"] == "invalid_resume"
            assert words in body["detail"]
            assert body["request_id"]
    url = aged.stream.url.replace("http", "ws") + f"/v1/ws?resume={cursor}"
    async with WsReader(url) as ws:
        await ws.wait_closed()
        assert ws.close_code == 4400
        assert ws.of_type("error")[0]["error"] == "invalid_resume"
