"""kill -9 and SIGTERM in the middle of the load: every event is stored exactly once."""

from __future__ import annotations

import signal
import time

import pytest

from tests.conftest import StartService, Topics
from tests.integration.writer.helpers import (
    committed_total,
    count_logs,
    make_events,
    metric,
    mongo,
    produce_events,
    stored_at_least,
    stored_ids,
    writer_env,
)
from tests.stack import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

EVENTS = 30_000
SHUTDOWN_TIMEOUT_S = 5.0


async def test_kill_9_mid_batch_then_restart_stores_everything_once(
    topics: Topics, mongo_database: str, service_process: StartService
) -> None:
    # Half the events carry no id: the writer derives one from the record's position, so a
    # redelivered record gets the same _id and is absorbed too.
    events = make_events(EVENTS // 2, prefix="crash") + make_events(
        EVENTS // 2, prefix="anon", with_ids=False
    )
    await produce_events(topics.main, events)
    env = writer_env(topics, mongo_database, batch_max_events=300)
    group = env["LOGRIVER_WRITER_GROUP_ID"]

    client = mongo()
    try:
        first = service_process("writer", env=env)
        await eventually(
            lambda: stored_at_least(client, mongo_database, 3_000),
            interval=0.05,
            what="writer under way",
        )
        first.kill()
        committed = await committed_total(topics.main, group)
        assert committed < EVENTS, "the writer finished before it could be killed"

        second = service_process("writer", env=env)
        await eventually(
            lambda: stored_at_least(client, mongo_database, EVENTS),
            within=60,
            what="all events stored after the restart",
        )
        await eventually(
            lambda: _committed(topics.main, group, EVENTS), what="all offsets committed"
        )
        ids = await stored_ids(client, mongo_database)
    finally:
        await client.close()

    assert len(ids) == EVENTS
    assert {i for i in ids if i.startswith("crash-")} == {e.id for e in events[: EVENTS // 2]}
    # The restart re-read exactly what was not committed: each record either already stored
    # (a duplicate, absorbed by _id) or inserted now.
    written = await metric(second.url, "logriver_writer_events_written_total")
    duplicates = await metric(second.url, "logriver_writer_duplicates_skipped_total")
    assert written + duplicates == EVENTS - committed


async def test_sigterm_under_load_drains_commits_and_exits_in_time(
    topics: Topics, mongo_database: str, service_process: StartService
) -> None:
    events = make_events(EVENTS, prefix="term")
    await produce_events(topics.main, events)
    env = writer_env(
        topics, mongo_database, batch_max_events=500, shutdown_timeout_s=SHUTDOWN_TIMEOUT_S
    )
    group = env["LOGRIVER_WRITER_GROUP_ID"]

    client = mongo()
    try:
        first = service_process("writer", env=env)
        await eventually(
            lambda: stored_at_least(client, mongo_database, 3_000),
            interval=0.05,
            what="writer under way",
        )
        started = time.monotonic()
        exit_code = first.terminate(within=SHUTDOWN_TIMEOUT_S + 10)
        took = time.monotonic() - started
        stored = await count_logs(client, mongo_database)
        committed = await committed_total(topics.main, group)

        second = service_process("writer", env=env)
        await eventually(
            lambda: stored_at_least(client, mongo_database, EVENTS),
            within=60,
            what="all events stored after the restart",
        )
        ids = await stored_ids(client, mongo_database)
    finally:
        await client.close()

    # uvicorn re-raises the signal once its graceful shutdown is complete.
    assert exit_code in (0, -signal.SIGTERM), first.tail()
    assert took < SHUTDOWN_TIMEOUT_S + 5
    log = first.tail(200)
    assert "writer drained" in log
    assert "Application shutdown complete" in log
    # The drain committed exactly what it stored: nothing committed is missing, nothing
    # stored will be re-read.
    assert committed == stored < EVENTS
    assert set(ids) == {e.id for e in events}
    assert len(ids) == EVENTS
    await eventually(
        lambda: _metric_is(second.url, "logriver_writer_events_written_total", EVENTS - stored),
        what="restart wrote the rest",
    )
    assert await metric(second.url, "logriver_writer_duplicates_skipped_total") == 0


async def _committed(topic: str, group: str, expected: int) -> bool:
    return await committed_total(topic, group) == expected


async def _metric_is(url: str, name: str, expected: float) -> bool:
    return await metric(url, name) == expected
