"""No single input stops the pipeline or leaks a secret (issue 13), on the real stack.

One private pipeline (gateway, relay, writer, stream, alerter on their own topics,
database and PostgreSQL schema) takes every hostile class through each entry:
HTTP, the raw topic (direct producers) and straight into ``logs.v1`` (a producer
that ignores the ACLs). Afterwards every consumer is still ready, each poison
record is in the DLQ with its reason, the good events sent after it are stored
exactly once and tailed, and secrets are masked in MongoDB and on the live tail.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

from logriver_common.auth import DEV_KEY
from logriver_common.consumer_kit.dead_letters import REASON_HEADER
from tests.conftest import Topics
from tests.integration.stream.clients import SseReader
from tests.processes import ServiceProcess
from tests.stack import STACK, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

AUTH = {"Authorization": f"Bearer {DEV_KEY}"}
SECRETS = ("hunter2", "4111 1111 1111 1111", "alice@example.com", "s3cr3t-value")
DEEP = b'{"a": ' * 10_000 + b"1" + b"}" * 10_000


@dataclass
class Pipeline:
    topics: Topics
    database: str
    gateway: ServiceProcess
    relay: ServiceProcess
    writer: ServiceProcess
    stream: ServiceProcess
    alerter: ServiceProcess
    mongo: AsyncMongoClient[dict[str, Any]]

    @property
    def services(self) -> list[ServiceProcess]:
        return [self.gateway, self.relay, self.writer, self.stream, self.alerter]

    async def stored(self, service: str) -> list[dict[str, Any]]:
        logs = self.mongo[self.database]["logs"]
        return [doc async for doc in logs.find({"service": service})]

    async def all_ready(self) -> dict[str, int]:
        async with httpx.AsyncClient(timeout=5) as client:
            return {
                f"{proc.name}{''.join(proc.args)}:{proc.port}": (
                    await client.get(f"{proc.url}/readyz")
                ).status_code
                for proc in self.services
            }


@pytest.fixture(scope="module")
def pipeline_ids() -> tuple[str, Topics]:
    unique = uuid.uuid4().hex[:10]
    return unique, Topics.named(unique)


@pytest.fixture(scope="module")
async def pipeline(stack: None, pipeline_ids: tuple[str, Topics]) -> AsyncIterator[Pipeline]:
    unique, topics = pipeline_ids
    await topics.create()
    schema = f"test_{unique}"
    admin = await asyncpg.connect(STACK.postgres_dsn)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    database = f"test_{unique}"
    env = {
        **topics.env(),
        "LOGRIVER_MODE": "local",
        "LOGRIVER_OTEL_ENABLED": "false",
        "LOGRIVER_MONGO_DATABASE": database,
        "LOGRIVER_POSTGRES_DSN": f"{STACK.postgres_dsn}?options=-csearch_path%3D{schema}",
        "LOGRIVER_WRITER_GROUP_ID": f"writer-{unique}",
        "LOGRIVER_WRITER_BATCH_MAX_WAIT_MS": "50",
        "LOGRIVER_ALERTER_GROUP_ID": f"alerter-{unique}",
        "LOGRIVER_INGEST_RELAY_GROUP_ID": f"relay-{unique}",
        "LOGRIVER_STREAM_HEARTBEAT_SECONDS": "0.5",
    }
    processes = _start_all(env, unique)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
    try:
        for proc in processes.values():
            proc.wait_ready(within=90)
        yield Pipeline(topics, database, mongo=mongo, **processes)
    finally:
        for proc in processes.values():
            proc.kill()
        await mongo.drop_database(database)
        await mongo.close()
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
        await topics.delete()


def _start_all(env: dict[str, str], unique: str) -> dict[str, ServiceProcess]:
    processes = {
        "gateway": ServiceProcess("ingest", env, tag=f"gateway-{unique}"),
        "relay": ServiceProcess(
            "ingest",
            env,
            tag=f"relay-{unique}",
            args=("relay",),
            port_env="LOGRIVER_INGEST_RELAY_PORT",
        ),
        "writer": ServiceProcess("writer", env, tag=f"hostile-{unique}"),
        "stream": ServiceProcess("stream", env, tag=f"hostile-{unique}"),
        "alerter": ServiceProcess("alerter", env, tag=f"hostile-{unique}"),
    }
    for proc in processes.values():
        proc.start()
    return processes


@pytest.fixture
def service(pipeline: Pipeline) -> str:
    """A service name of this test's own, so tests share the pipeline but not their events."""
    return f"hostile-{uuid.uuid4().hex[:8]}"


def good(service: str, n: int) -> dict[str, Any]:
    """A good event carrying every kind of secret the gateway's defaults mask."""
    return {
        "id": f"{service}-good-{n}",
        "service": service,
        "level": "error",
        "message": f"good {n}: password=hunter2 card 4111 1111 1111 1111 for alice@example.com",
        "metadata": {"token": "s3cr3t-value", "n": n},
    }


def hostile_items(service: str) -> list[tuple[str, Any]]:
    """(case, event) pairs every entry must refuse without harm."""
    base = {"service": service, "message": "poison"}
    return [
        ("uint64", {**base, "metadata": {"n": 2**64 - 1}}),
        ("int64+1", {**base, "metadata": {"n": 2**63}}),
        ("year-one-plus-one", {**base, "timestamp": "0001-01-01T00:00:00+01:00"}),
        ("year-9999-minus-one", {**base, "timestamp": "9999-12-31T23:59:59-01:00"}),
        ("epoch", {**base, "timestamp": "1970-01-01T00:00:00Z"}),
        ("before-epoch", {**base, "timestamp": "1969-07-20T20:17:40Z"}),
        ("expired", {**base, "timestamp": (datetime.now(UTC) - timedelta(days=400)).isoformat()}),
        ("future", {**base, "timestamp": "2999-01-01T00:00:00Z"}),
        ("nul-message", {**base, "message": "a\x00b"}),
        ("dollar-key", {**base, "metadata": {"$where": "sleep(1000)"}}),
        ("dotted-key", {**base, "metadata": {"a.b": 1}}),
        ("operator-object", {**base, "metadata": {"q": {"$gt": ""}}}),
        ("too-deep", {**base, "metadata": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}),
        ("huge-message", {**base, "message": "x" * 40_000}),
        ("not-an-object", [1, 2, 3]),
        ("unknown-field", {**base, "colour": "red"}),
        ("wrong-types", {"service": 5, "message": {"a": 1}, "level": []}),
    ]


def raw_hostile_values(service: str) -> list[tuple[str, bytes | None]]:
    """Values only a Kafka producer can send (no HTTP body parser in front)."""
    prefix = b'{"service": "' + service.encode() + b'", "message": "poison", '
    return [
        ("bigint", prefix + b'"metadata": {"n": 123456789012345678901234567890}}'),
        ("nan", prefix + b'"metadata": {"n": NaN}}'),
        ("1e400", prefix + b'"metadata": {"n": 1e400}}'),
        ("deep-10000", prefix + b'"metadata": ' + DEEP + b"}"),
        ("invalid-utf8", prefix + b'"host": "\xff\xfe"}'),
        ("lone-surrogate", prefix + b'"host": "\\ud800"}'),
        ("not-json", b"ERROR something broke"),
        ("tombstone", None),
        ("over-record-limit", prefix + b'"metadata": {"pad": "' + b"x" * 400_000 + b'"}}'),
        *((case, json.dumps(item).encode()) for case, item in hostile_items(service)),
    ]


async def produce(topic: str, values: Sequence[tuple[bytes, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=STACK.kafka, acks="all", max_request_size=2**21)
    await producer.start()
    try:
        acks = [await producer.send(topic, value=v, key=k) for k, v in values]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


async def dlq_reasons(topic: str, service: str, expected: int) -> list[str]:
    """Reasons of the DLQ records that belong to ``service`` (or carry no parsable service)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=STACK.kafka, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    reasons: list[str] = []
    try:

        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.key == service.encode():
                        reasons.append(dict(record.headers)[REASON_HEADER].decode())
            return len(reasons) >= expected

        await eventually(enough, within=60, what=f"{expected} DLQ records for {service}")
    finally:
        await consumer.stop()
    return reasons


async def assert_good_events_stored_once_masked_and_tailed(
    pipeline: Pipeline, tail: SseReader, service: str, count: int
) -> None:
    async def stored_all() -> list[dict[str, Any]] | None:
        docs = await pipeline.stored(service)
        return docs if len(docs) >= count else None

    docs = await eventually(stored_all, within=60, what="good events stored")
    assert sorted(d["_id"] for d in docs) == sorted(f"{service}-good-{n}" for n in range(count))
    tailed = await tail.wait_logs(count)
    # The tail is at-least-once: a producer's retry is tailed twice, stored once.
    assert {e["id"] for e in tailed} == {d["_id"] for d in docs}
    # Nothing but the good events reached the live tail: the poison was skipped, not tailed.
    assert all("poison" not in e["message"] for e in tailed)
    for text in (orjson.dumps(docs, default=str), orjson.dumps(tailed)):
        for secret in SECRETS:
            assert secret.encode() not in text, f"{secret!r} leaked"
    statuses = await pipeline.all_ready()
    assert set(statuses.values()) == {200}, statuses


async def open_tail(pipeline: Pipeline, service: str) -> SseReader:
    tail = SseReader(pipeline.stream.url, params={"service": service})
    await tail.__aenter__()
    await tail.wait_open()
    return tail


async def test_http_hostile_items_are_per_item_4xx_and_good_ones_flow(
    pipeline: Pipeline, service: str
) -> None:
    tail = await open_tail(pipeline, service)
    try:
        cases = hostile_items(service)
        items = [item for _, item in cases] + [good(service, n) for n in range(3)]
        async with httpx.AsyncClient(base_url=pipeline.gateway.url, headers=AUTH) as client:
            resp = await client.post("/v1/logs", content=json.dumps(items))
            assert resp.status_code == 207, resp.text
            body = resp.json()
            assert body["accepted"] == 3
            assert [e["index"] for e in body["errors"]] == list(range(len(cases)))

            # Whole bodies that cannot be events: a clear 4xx each, never a 5xx.
            for content, headers in [
                (b"[" + DEEP + b"]", {}),
                (b'{"service": "a", "message": "m", "metadata": {"n": 1e400}}', {}),
                (b"\xff\xfe", {}),
                (b"[]", {}),
                (b"null", {}),
                (b"{" * 100_000, {}),
                (json.dumps(hostile_items(service)[0][1]).encode(), {}),
                (b'{"service": "a", "message": "m"}', {"Content-Type": "text/plain"}),
                (b"\x1f\x8b\x08not gzip", {"Content-Encoding": "gzip"}),
            ]:
                answer = await client.post("/v1/logs", content=content, headers=headers)
                assert 400 <= answer.status_code < 500, (content[:60], answer.text)
                assert answer.json()["error"], answer.text
        await assert_good_events_stored_once_masked_and_tailed(pipeline, tail, service, 3)
    finally:
        await tail.close()


async def test_raw_topic_poison_is_dead_lettered_by_the_relay_and_secrets_masked(
    pipeline: Pipeline, service: str
) -> None:
    tail = await open_tail(pipeline, service)
    try:
        cases = raw_hostile_values(service)
        key = service.encode()
        values = [(key, value) for _, value in cases]
        values += [(key, orjson.dumps(good(service, n))) for n in range(3)]
        # Sent twice: a producer retry must still be stored once.
        values += [(key, orjson.dumps(good(service, n))) for n in range(3)]
        await produce(pipeline.topics.raw, values)

        reasons = await dlq_reasons(pipeline.topics.dlq, service, len(cases))
        assert len(reasons) == len(cases)
        assert not {"handler_error", "decoder_error"} & set(reasons)
        assert {"not_json", "null_value", "too_large", "not_object", "expired"} <= set(reasons)
        await assert_good_events_stored_once_masked_and_tailed(pipeline, tail, service, 3)
    finally:
        await tail.close()


async def test_poison_straight_into_logs_v1_never_stops_a_consumer(
    pipeline: Pipeline, service: str
) -> None:
    tail = await open_tail(pipeline, service)
    try:
        # The records that stopped the writer, alerter and stream for good before issue 13.
        cases = [
            (case, value)
            for case, value in raw_hostile_values(service)
            if case not in {"expired", "epoch"}  # the time policy is the door's, not storage's
        ]
        key = service.encode()
        masked = {
            k: v
            for k, v in good(service, 0).items()
            if k not in {"message", "metadata"}  # logs.v1 holds what logriver already redacted
        }
        values = [(key, value) for _, value in cases]
        values += [
            (key, orjson.dumps({**masked, "id": f"{service}-good-{n}", "message": f"good {n}"}))
            for n in range(3)
        ]
        await produce(pipeline.topics.main, values)

        reasons = await dlq_reasons(pipeline.topics.dlq, service, len(cases))
        assert len(reasons) == len(cases)
        assert not {"handler_error", "decoder_error"} & set(reasons)
        await assert_good_events_stored_once_masked_and_tailed(pipeline, tail, service, 3)
    finally:
        await tail.close()
