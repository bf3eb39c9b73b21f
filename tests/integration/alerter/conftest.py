"""Fixtures for the alerter: a private PostgreSQL schema, event senders, receivers, the API.

PostgreSQL isolation: every test gets its own schema (the ``postgres_dsn`` fixture),
selected through the DSN's ``options=-csearch_path=...``; the alerter
subprocesses and the test's own queries use that DSN, so rules, alerts and
deliveries of concurrent tests never meet.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from logriver_common.auth import DEV_KEY
from logriver_common.documents import event_to_document
from logriver_common.event import Level, LogEvent
from tests.conftest import StartService, Topics
from tests.integration.alerter.receivers import Handler, Receiver
from tests.processes import ServiceProcess
from tests.stack import STACK, eventually

pytestmark = [pytest.mark.integration]


@dataclass(frozen=True)
class AlerterEnv:
    dsn: str
    group_id: str
    topics: Topics
    mongo_database: str

    def env(self, **overrides: str) -> dict[str, str]:
        """Short windows and timeouts so lifecycles complete in seconds."""
        return {
            **self.topics.env(),
            "LOGRIVER_MONGO_DATABASE": self.mongo_database,
            "LOGRIVER_POSTGRES_DSN": self.dsn,
            "LOGRIVER_OTEL_ENABLED": "false",
            "LOGRIVER_ALERTER_GROUP_ID": self.group_id,
            "LOGRIVER_ALERTER_EVAL_INTERVAL_S": "0.25",
            "LOGRIVER_ALERTER_LATENESS_S": "1",
            "LOGRIVER_ALERTER_RULES_REFRESH_S": "0.5",
            "LOGRIVER_ALERTER_COMMIT_INTERVAL_S": "0.5",
            "LOGRIVER_ALERTER_SESSION_TIMEOUT_MS": "6000",
            "LOGRIVER_ALERTER_DELIVERY_TIMEOUT_S": "1",
            "LOGRIVER_ALERTER_DELIVERY_BACKOFF_S": "0.2",
            "LOGRIVER_ALERTER_DELIVERY_MAX_ATTEMPTS": "3",
            "LOGRIVER_ALERTER_OUTBOX_SWEEP_S": "1",
            "LOGRIVER_ALERTER_CONSOLE_BASE_URL": "http://console.test",
            **overrides,
        }


@pytest.fixture
def alerter_env(topics: Topics, mongo_database: str, postgres_dsn: str, unique: str) -> AlerterEnv:
    return AlerterEnv(
        dsn=postgres_dsn,
        group_id=f"alerter-{unique}",
        topics=topics,
        mongo_database=mongo_database,
    )


@pytest.fixture
async def db(alerter_env: AlerterEnv) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's own schema."""
    pool = await asyncpg.create_pool(alerter_env.dsn, min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


StartAlerter = Callable[..., ServiceProcess]
StartReceiver = Callable[[Handler], Awaitable[Receiver]]


@pytest.fixture
def start_alerter(service_process: StartService, alerter_env: AlerterEnv) -> StartAlerter:
    def start(**overrides: str) -> ServiceProcess:
        return service_process("alerter", alerter_env.env(**overrides))

    return start


def admin_client(proc: ServiceProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=proc.url, headers={"Authorization": f"Bearer {DEV_KEY}"}, timeout=10
    )


@pytest.fixture
async def receivers() -> AsyncIterator[StartReceiver]:
    started: list[Receiver] = []

    async def start(handler: Handler) -> Receiver:
        receiver = await Receiver(handler).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.close()


class Events:
    """Produces events to Kafka keyed by service (as the gateway does) and stores them in
    MongoDB as the writer would, so a restarted alerter can rebuild from the counts."""

    def __init__(self, producer: AIOKafkaProducer, mongo: AsyncMongoClient[Any], env: AlerterEnv):
        self.producer = producer
        self.logs = mongo[env.mongo_database]["logs"]
        self.topic = env.topics.main
        self.first_sent: dict[str, float] = {}

    async def send(
        self,
        service: str,
        level: Level,
        count: int,
        message: str = "payment provider timed out",
        *,
        trace_id: str | None = None,
        store: bool = True,
    ) -> None:
        now = datetime.now(UTC)
        events = [
            LogEvent(
                service=service,
                level=level,
                message=message,
                trace_id=trace_id,
                timestamp=now - timedelta(milliseconds=count - i),
                received_at=now,
            )
            for i in range(count)
        ]
        self.first_sent.setdefault(service, time.monotonic())
        for event in events:
            await self.producer.send(self.topic, event.to_json(), key=service.encode())
        await self.producer.flush()
        if store:
            await self.logs.insert_many([event_to_document(e, None) for e in events])


@pytest.fixture
async def events(alerter_env: AlerterEnv) -> AsyncIterator[Events]:
    producer = AIOKafkaProducer(bootstrap_servers=STACK.kafka, acks="all", linger_ms=5)
    await producer.start()
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
    try:
        yield Events(producer, mongo, alerter_env)
    finally:
        await producer.stop()
        await mongo.close()


async def create_channel(api: httpx.AsyncClient, name: str, config: dict[str, Any]) -> None:
    resp = await api.put(f"/v1/channels/{name}", json=config)
    assert resp.status_code in (200, 201), resp.text


async def create_rule(api: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    resp = await api.post("/v1/rules", json=spec)
    assert resp.status_code == 201, resp.text
    rule: dict[str, Any] = resp.json()
    return rule


async def wait_rules_loaded(api: httpx.AsyncClient, count: int) -> None:
    async def loaded() -> bool:
        status = (await api.get("/v1/status")).json()
        return bool(status["rules"] >= count and status["partitions"])

    await eventually(loaded, within=30, what="rules loaded and partitions assigned")


def kinds(receiver: Receiver, service: str, payload_kind: Callable[[Any], str]) -> list[str]:
    """The notification kinds a receiver accepted for one service."""
    return [payload_kind(r.json()) for r in receiver.accepted if service in r.body.decode()]
