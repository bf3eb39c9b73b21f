"""Bad records go to the DLQ with reason and source position; good neighbours are stored.

A DLQ ratio limit stops the consumer (and fails /readyz) when almost everything is bad.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import ConsumerRecord

from logriver_common import clients
from logriver_common.settings import KafkaSettings
from tests.conftest import StartService, Topics
from tests.integration.writer.helpers import (
    MongoClient,
    RawRecord,
    committed_total,
    count_logs,
    end_offsets_total,
    metric,
    mongo,
    produce_raw,
    writer_env,
)
from tests.stack import STACK, eventually, wait_for_jaeger

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]


def valid(event_id: str) -> bytes:
    return orjson.dumps({"id": event_id, "service": "checkout", "message": f"ok {event_id}"})


async def test_bad_records_are_dead_lettered_and_neighbours_stored(
    topics: Topics, mongo_database: str, service_process: StartService
) -> None:
    await wait_for_jaeger()  # it may still be building (devstack/jaeger.py)
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01".encode()
    records: list[tuple[str | None, RawRecord]] = [
        (None, (b"checkout", valid("good-1"), [])),
        ("not_json", (b"checkout", b"ERROR something broke", [])),
        (None, (b"checkout", valid("good-2"), [])),
        ("invalid_event", (b"checkout", orjson.dumps({"service": "checkout"}), [])),
        ("too_large", (b"checkout", orjson.dumps({"service": "a", "message": "x" * 300_000}), [])),
        (
            "forbidden_key",
            (b"checkout", orjson.dumps({"service": "a", "message": "m", "$set": {"x": 1}}), []),
        ),
        (
            "forbidden_key",
            (
                b"checkout",
                orjson.dumps({"service": "a", "message": "m", "metadata": {"$where": "1"}}),
                [],
            ),
        ),
        ("invalid_utf8", (b"checkout", b'{"service":"a","message":"\xc3\x28"}', [])),
        ("null_value", (b"checkout", None, [("traceparent", traceparent)])),
        (None, (b"checkout", valid("good-3"), [("traceparent", traceparent)])),
    ]
    positions = await produce_raw(topics.main, [record for _, record in records])
    expected_dlq = {
        offset: reason
        for (reason, _), (_, offset) in zip(records, positions, strict=True)
        if reason is not None
    }
    writer = service_process("writer", env=writer_env(topics, mongo_database))

    client = mongo()
    try:
        await eventually(lambda: _stored(client, mongo_database, 3), what="valid records stored")
        stored = await client[mongo_database]["logs"].distinct("_id")
    finally:
        await client.close()
    assert sorted(stored) == ["good-1", "good-2", "good-3"]

    dead = await _read_dlq(topics.dlq, len(expected_dlq))
    assert len(dead) == len(expected_dlq)
    by_offset: dict[int, dict[str, bytes]] = {}
    for record in dead:
        headers = dict(record.headers)
        assert headers["x-source-topic"] == topics.main.encode()
        assert headers["x-source-partition"] == b"0"
        assert headers["x-dlq-detail"]
        by_offset[int(headers["x-source-offset"])] = headers
    assert {offset: h["x-dlq-reason"].decode() for offset, h in by_offset.items()} == expected_dlq
    # The original value travels with the dead letter, byte for byte.
    invalid_utf8 = next(o for o, r in expected_dlq.items() if r == "invalid_utf8")
    assert next(
        r.value for r in dead if dict(r.headers)["x-source-offset"] == str(invalid_utf8).encode()
    ) == (b'{"service":"a","message":"\xc3\x28"}')
    null_value = next(r for r in dead if dict(r.headers)["x-dlq-reason"] == b"null_value")
    assert null_value.value is None
    assert dict(null_value.headers)["traceparent"] == traceparent

    assert await metric(writer.url, "logriver_writer_dlq_records_total") == len(expected_dlq)
    assert (
        await metric(writer.url, "logriver_writer_dlq_records_total", 'reason="forbidden_key"') == 2
    )
    group = f"writer-{mongo_database}"
    await eventually(lambda: _committed(topics.main, group, len(records)), what="offsets")

    # The batch span links to the producer's trace context from the record headers.
    span = await eventually(
        lambda: _writer_span_linked_to(topics.main, trace_id), within=30, what="writer span"
    )
    assert span["operationName"] == "writer.batch"


async def test_dlq_ratio_limit_stops_the_consumer_and_fails_readiness(
    topics: Topics, mongo_database: str, service_process: StartService
) -> None:
    garbage: list[RawRecord] = [(b"k", f"garbage {i}".encode(), []) for i in range(400)]
    await produce_raw(topics.main, garbage)
    writer = service_process(
        "writer",
        env=writer_env(
            topics,
            mongo_database,
            batch_max_events=20,
            dlq_ratio_limit=0.9,
            dlq_ratio_window=100,
            dlq_ratio_min_records=50,
        ),
        wait=False,
    )

    body = await eventually(lambda: _unready(writer.url), within=60, what="/readyz failing")
    assert "ratio" in body["checks"]["consumer"]["error"]
    assert body["checks"]["mongodb"]["status"] == "up"
    assert writer.running(), "the process stays up so /readyz can say why it stopped"
    assert "DLQ ratio limit exceeded" in writer.tail(100)

    dead_lettered = await end_offsets_total(topics.dlq)
    committed = await committed_total(topics.main, f"writer-{mongo_database}")
    # It stopped early instead of emptying the topic into the DLQ, and it committed only
    # what it had dead-lettered: a fixed writer resumes right there.
    assert 0 < dead_lettered <= 100
    assert committed == dead_lettered
    assert await metric(writer.url, "logriver_writer_dlq_records_total") == dead_lettered


async def _stored(client: MongoClient, database: str, count: int) -> bool:
    return await count_logs(client, database) >= count


async def _committed(topic: str, group: str, expected: int) -> bool:
    return await committed_total(topic, group, partitions=6) == expected


async def _read_dlq(topic: str, expected: int) -> list[ConsumerRecord]:
    consumer = clients.kafka_consumer(KafkaSettings(bootstrap_servers=STACK.kafka), topic)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:

        async def more() -> bool:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
            return len(records) >= expected

        await eventually(more, within=30, what="dead letters")
        return records
    finally:
        await consumer.stop()


async def _unready(url: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(timeout=5) as http:
        try:
            resp = await http.get(f"{url}/readyz")
        except httpx.HTTPError:
            return None
    body: dict[str, Any] = resp.json()
    return body if resp.status_code == 503 and "consumer" in body["checks"] else None


async def _writer_span_linked_to(topic: str, trace_id: str) -> dict[str, Any] | None:
    params = {
        "service": "logriver-writer",
        "tags": orjson.dumps({"messaging.destination.name": topic}).decode(),
        "lookback": "1h",
        "limit": "50",
    }
    async with httpx.AsyncClient(base_url=STACK.jaeger_query, timeout=5) as http:
        resp = await http.get("/api/traces", params=params)
    if resp.status_code != 200:
        return None
    for found in resp.json().get("data") or []:
        for span in found["spans"]:
            if any(ref["traceID"] == trace_id for ref in span.get("references", [])):
                return dict(span)
    return None
