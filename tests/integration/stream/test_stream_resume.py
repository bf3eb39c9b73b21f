"""Exact resume: a client that missed 10k events gets exactly the matching ones, on any instance."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete

from logriver_stream.cursor import CursorCodec
from tests.integration.stream.clients import AUTH, EventProducer, SseReader, WsReader, event
from tests.integration.stream.conftest import Instances
from tests.stack import STACK

pytestmark = pytest.mark.integration

MISSED = 10_000


def by_service(events: list[dict[str, Any]]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = defaultdict(list)
    for item in events:
        grouped[item["service"]].append(item["metadata"]["seq"])
    return dict(grouped)


def assert_exactly(received: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Same events, no duplicates, and each service's events in production order."""
    got = by_service(received)
    want = by_service(expected)
    assert {s: len(v) for s, v in got.items()} == {s: len(v) for s, v in want.items()}
    assert got == want


async def test_resume_after_10k_missed_events_on_the_same_and_another_instance(
    instances: Instances, run_id: str
) -> None:
    services = [f"{run_id}-r{i}" for i in range(3)]
    noise = f"{run_id}-noise"
    params = [("service", s) for s in services] + [("level", "INFO")]

    def batch(start: int, count: int) -> list[dict[str, Any]]:
        out = []
        for seq in range(start, start + count):
            if seq % 5 == 0:
                out.append(event(noise, seq, run=run_id))
            else:
                level = "DEBUG" if seq % 7 == 0 else "INFO"
                out.append(event(services[seq % 3], seq, run=run_id, level=level))
        return out

    def matching(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in events if e["service"] in services and e["level"] != "DEBUG"]

    async with EventProducer(instances.topic) as producer:
        first = batch(0, 30)
        async with SseReader(instances.a.url, params) as before:
            await before.wait_open()
            await producer.send(first)
            await before.wait_logs(len(matching(first)))
            last_id = before.ids[-1]
            assert_exactly(before.logs, matching(first))

        missed = batch(30, MISSED)
        await producer.send(missed)

        # Reconnect to the same instance while new events keep arriving: the
        # replay must hand over to live without a gap or an overlap.
        live = batch(30 + MISSED, 300)
        headers_a = {**_auth(), "Last-Event-ID": last_id}
        async with SseReader(instances.a.url, params, headers=headers_a) as again:
            await again.wait_open()
            await producer.send(live)
            expected = matching(missed) + matching(live)
            await again.wait_logs(len(expected), within=120)
            assert_exactly(again.logs, expected)
            assert again.dropped == []
            resumed_last = again.ids[-1]

        # The same resume id on the other instance: the same events, exactly.
        headers_b = {**_auth(), "Last-Event-ID": last_id}
        async with SseReader(instances.b.url, params, headers=headers_b) as other:
            await other.wait_open()
            await other.wait_logs(len(expected), within=120)
            assert_exactly(other.logs, expected)

        # Resuming from the end of the first resume (as a WebSocket, on B) has nothing
        # to replay, and then continues live.
        url = instances.b.url.replace("http", "ws") + "/v1/ws?" + _query(params)
        async with WsReader(url) as ws:
            await ws.wait_for("open")
            await ws.send({"type": "resume", "id": resumed_last})
            await ws.wait_for("open", 2)
            tail = batch(30 + MISSED + 300, 20)
            await producer.send(tail)
            await ws.wait_for("log", len(matching(tail)))
            after_resume = ws.messages[_second_open(ws.messages) :]
            assert_exactly([m["event"] for m in after_resume if m["type"] == "log"], matching(tail))


def _second_open(messages: list[dict[str, Any]]) -> int:
    opens = [i for i, m in enumerate(messages) if m["type"] == "open"]
    return opens[1]


def _auth() -> dict[str, str]:
    return dict(AUTH)


def _query(params: list[tuple[str, str]]) -> str:
    return "&".join(f"{k}={v}" for k, v in params)


async def test_since_starts_with_recent_history(instances: Instances, run_id: str) -> None:
    svc = f"{run_id}-since"
    async with EventProducer(instances.topic) as producer:
        history = [event(svc, seq, run=run_id) for seq in range(5)]
        await producer.send(history)
        async with SseReader(instances.a.url, {"service": svc, "since": "5m"}) as sse:
            await sse.wait_open()
            await sse.wait_logs(5)
            await producer.send([event(svc, 5, run=run_id)])
            await sse.wait_logs(6)
            assert [e["metadata"]["seq"] for e in sse.logs] == list(range(6))


async def test_expired_resume_point_is_reported_not_silent(
    instances: Instances, run_id: str
) -> None:
    svc = f"{run_id}-expired"
    async with SseReader(instances.b.url, {"service": svc}) as sse:
        await sse.wait_open()
        old_cursor = sse.last_id
    assert old_cursor is not None
    async with EventProducer(instances.topic) as producer:
        await producer.send([event(svc, seq, run=run_id) for seq in range(12)])
    # Retention deleting the records after that cursor: move every log start forward.
    admin = AIOKafkaAdminClient(bootstrap_servers=STACK.kafka)
    await admin.start()
    try:
        codec = CursorCodec(instances.topic)
        position = codec.decode(old_cursor)
        ends = await _end_offsets(instances.topic, list(position))
        await admin.delete_records(
            {
                TopicPartition(instances.topic, p): RecordsToDelete(ends[p])
                for p in position
                if ends[p] > position[p]
            },
            timeout_ms=10_000,
        )
    finally:
        await admin.close()

    headers = {**_auth(), "Last-Event-ID": old_cursor}
    async with SseReader(instances.b.url, {"service": svc}, headers=headers) as sse:
        await sse.wait_end()
        assert sse.status == 200  # said in the stream, where EventSource can read it
        assert sse.logs == []
        assert sse.errors[0]["error"] == "resume_expired"
        assert "retention" in sse.errors[0]["detail"]

    url = instances.a.url.replace("http", "ws") + f"/v1/ws?service={svc}&resume={old_cursor}"
    async with WsReader(url) as ws:
        await ws.wait_closed()
        assert ws.close_code == 4410
        assert ws.close_reason is not None
        assert ws.close_reason.startswith("resume_expired")
        assert ws.of_type("error")[0]["error"] == "resume_expired"


async def _end_offsets(topic: str, partitions: list[int]) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=STACK.kafka)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def test_many_resumes_at_once_are_served(instances: Instances, run_id: str) -> None:
    """A reconnect storm: every client gets its events (replays share a bounded pool)."""
    svc = f"{run_id}-storm"
    async with SseReader(instances.a.url, {"service": svc}) as sse:
        await sse.wait_open()
        cursor = sse.last_id
    async with EventProducer(instances.topic) as producer:
        await producer.send([event(svc, seq, run=run_id) for seq in range(50)])
    headers = {**_auth(), "Last-Event-ID": cursor or ""}
    readers = [SseReader(instances.a.url, {"service": svc}, headers=headers) for _ in range(20)]
    try:
        for reader in readers:
            await reader.__aenter__()
        await asyncio.gather(*(reader.wait_logs(50) for reader in readers))
        for reader in readers:
            assert [e["metadata"]["seq"] for e in reader.logs] == list(range(50))
    finally:
        await asyncio.gather(*(reader.close() for reader in readers))
