"""A realistic data set shared by the query tests, and the query app running in-process.

200k events across 20 services, 50 events per timestamp, written with
``w=3`` so every secondary has them before the tests read from secondaries.
The app runs in this process (ASGI transport) with a command listener, so
tests can see which member each database command went to.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient, WriteConcern
from pymongo.errors import OperationFailure
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from logriver_common.auth import DEV_KEY
from logriver_common.documents import event_to_document
from logriver_common.event import Level, LogEvent
from logriver_common.indexes import ensure_log_indexes
from logriver_common.settings import MongoSettings, RedisSettings, TelemetrySettings
from logriver_query.app import create_app
from logriver_query.settings import QuerySettings
from logriver_writer import rollups
from tests.stack import STACK

EVENTS = 200_000
SERVICES = [f"svc-{n:02d}" for n in range(20)]
LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LEVEL_WEIGHTS = [20, 55, 15, 8, 2]
MESSAGES = [
    "GET /api/orders/{n} 200",
    "payment provider timed out after {n} ms",
    "cache miss for key user:{n}",
    "Connection reset by peer",
    "retrying request (attempt {n})",
    "Disk usage at {n} percent",
]
READS = {"find", "aggregate", "count", "distinct"}


@dataclass
class CommandLog(CommandListener):
    """Every read command on the test database: name, member address, read preference
    (and, in ``concerns``, its read concern level, None for the default)."""

    database: str = ""
    reads: list[tuple[str, tuple[str, int | None], Any]] = field(default_factory=list)
    concerns: list[str | None] = field(default_factory=list)

    def started(self, event: CommandStartedEvent) -> None:
        if event.database_name == self.database and event.command_name in READS:
            pref = event.command.get("$readPreference")
            self.reads.append((event.command_name, event.connection_id, pref))
            self.concerns.append(event.command.get("readConcern", {}).get("level"))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        return None

    def failed(self, event: CommandFailedEvent) -> None:
        return None

    def count(self, name: str) -> int:
        return sum(1 for command, _, _ in self.reads if command == name)


@dataclass(frozen=True)
class DataSet:
    database: str
    docs: list[dict[str, Any]]
    newest: datetime
    oldest: datetime

    @property
    def params(self) -> dict[str, str]:
        """A window that holds the whole set."""
        return {
            "since": (self.oldest - timedelta(seconds=1)).isoformat(),
            "until": (self.newest + timedelta(seconds=1)).isoformat(),
        }


def make_events(count: int, newest: datetime, seed: int = 5) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    docs = []
    for i in range(count):
        n = rng.randrange(1000)
        trace = f"{i // 100 + 1:032x}" if i % 100 < 5 else None
        event = LogEvent(
            # 50 events share each timestamp; one timestamp every 250 ms.
            timestamp=newest - timedelta(milliseconds=(i // 50) * 250),
            service=rng.choice(SERVICES),
            level=Level(rng.choices(LEVELS, LEVEL_WEIGHTS)[0]),
            message=rng.choice(MESSAGES).format(n=n),
            host=f"web-{i % 7}",
            env="prod" if i % 3 else "staging",
            trace_id=trace,
            metadata={"order": f"A-{i % 500}", "attempt": i % 4},
        )
        docs.append(event_to_document(event, None))
    return docs


def spread_events(
    count: int, hours: int, *, seed: int, message: str | list[str]
) -> tuple[list[dict[str, Any]], datetime]:
    """``count`` events at random times over the ``hours`` before ``newest`` (3 minutes
    ago), in four services and every level, with ``message`` (or one of them at random);
    the documents and ``newest``."""
    rng = random.Random(seed)
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    docs = []
    for _ in range(count):
        event = LogEvent(
            timestamp=newest - timedelta(milliseconds=rng.randrange(hours * 3_600_000)),
            service=rng.choice(SERVICES[:4]),
            level=Level(rng.choice(LEVELS)),
            message=message if isinstance(message, str) else rng.choice(message),
        )
        docs.append(event_to_document(event, None))
    return docs, newest


@asynccontextmanager
async def stored(docs: list[dict[str, Any]], prefix: str) -> AsyncIterator[str]:
    """A new database holding ``docs`` on every member; its name; dropped afterwards."""
    database = f"{prefix}_{uuid.uuid4().hex[:10]}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
    try:
        logs = client[database]["logs"]
        await ensure_log_indexes(logs)
        # w=3: every member has the data before tests read from secondaries.
        everywhere = logs.with_options(write_concern=WriteConcern(w=3, wtimeout=120_000))
        for start in range(0, len(docs), 20_000):
            # With template hashes, rollups and dictionary, exactly as the writer stores them.
            await rollups.load(everywhere, docs[start : start + 20_000])
        await in_every_snapshot(database)
        yield database
    finally:
        await client.drop_database(database)
        await client.close()


async def in_every_snapshot(database: str) -> None:
    """Wait until a snapshot read on every member sees the writes made so far: a member
    serves one at the majority commit point it has heard of, which follows the writes by
    a moment (top messages read at read concern snapshot). A marker written with w=3 is
    looked for on each member; the commit point only moves forward."""
    marker = {"_id": uuid.uuid4().hex}
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri)
    try:
        markers = client[database].get_collection(
            "test_snapshot_markers", write_concern=WriteConcern(w=3)
        )
        await markers.insert_one(dict(marker))
    finally:
        await client.close()
    for address in STACK.mongo_uri.split("//")[1].split("/")[0].split(","):
        host, port = address.split(":")
        member: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            host, int(port), directConnection=True, readConcernLevel="snapshot"
        )
        try:
            for _ in range(200):
                try:
                    if await member[database]["test_snapshot_markers"].find_one(marker):
                        break
                except OperationFailure as exc:
                    if exc.code != 246:  # SnapshotUnavailable: the collection is newer
                        raise
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"{address}: no snapshot holds the writes")
        finally:
            await member.close()


@pytest.fixture(scope="session")
async def dataset(stack: None) -> AsyncIterator[DataSet]:
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    docs = make_events(EVENTS, newest)
    async with stored(docs, "test_query") as database:
        yield DataSet(database, docs, newest, min(d["timestamp"] for d in docs))


def unique_window(dataset: DataSet) -> dict[str, str]:
    """The whole set, with an `until` no other test uses: a cache key nobody has filled."""
    until = dataset.newest + timedelta(seconds=1, milliseconds=uuid.uuid4().int % 999_000)
    return {**dataset.params, "until": until.isoformat()}


@dataclass
class QueryApp:
    app: FastAPI
    http: httpx.AsyncClient
    commands: CommandLog
    settings: QuerySettings

    @property
    def mongo(self) -> AsyncMongoClient[dict[str, Any]]:
        client: AsyncMongoClient[dict[str, Any]] = self.app.state.query.collection.database.client
        return client


def query_settings(database: str, **overrides: Any) -> QuerySettings:
    options: dict[str, Any] = {
        "telemetry": TelemetrySettings(enabled=False),
        "mongo": MongoSettings(database=database),
        # A private cache namespace so parallel runs never share cached results.
        "redis": RedisSettings(key_prefix=f"test-{uuid.uuid4().hex[:8]}:"),
        **overrides,
    }
    return QuerySettings(**options)


async def start_query_app(settings: QuerySettings) -> AsyncIterator[QueryApp]:
    commands = CommandLog(database=settings.mongo.database)
    app = create_app(settings, mongo_listeners=[commands])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        headers = {"X-API-Key": DEV_KEY}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://query", headers=headers, timeout=60
        ) as http:
            yield QueryApp(app, http, commands, settings)


@pytest.fixture(scope="session")
async def query(dataset: DataSet) -> AsyncIterator[QueryApp]:
    async for running in start_query_app(query_settings(dataset.database)):
        yield running
