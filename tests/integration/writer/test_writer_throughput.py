"""100k events produced straight to Kafka are stored exactly once.

(The mixed "some through the gateway" half of this scenario lives in the
end-to-end suite, once the ingest gateway exists: see docs/writer.md.)
"""

from __future__ import annotations

import pytest

from logriver_common.indexes import LOG_INDEXES
from tests.conftest import StartService, Topics
from tests.integration.writer.helpers import (
    MongoClient,
    committed_total,
    count_logs,
    make_events,
    metric,
    mongo,
    produce_events,
    stored_ids,
    writer_env,
)
from tests.stack import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

EVENTS = 100_000


async def test_100k_events_are_stored_exactly_once(
    topics: Topics, mongo_database: str, service_process: StartService
) -> None:
    events = make_events(EVENTS, prefix="bulk")
    writer = service_process("writer", env=writer_env(topics, mongo_database))
    await produce_events(topics.main, events)

    client = mongo()
    try:
        await eventually(
            lambda: _all_stored(client, mongo_database),
            within=60,
            interval=0.5,
            what="100k events stored",
        )
        ids = await stored_ids(client, mongo_database)
        indexes = await client[mongo_database]["logs"].index_information()
        sample = await client[mongo_database]["logs"].find_one({"_id": "bulk-42"})
    finally:
        await client.close()

    assert len(ids) == EVENTS
    assert set(ids) == {event.id for event in events}
    assert {index.document["name"] for index in LOG_INDEXES} <= set(indexes)
    assert sample is not None
    assert sample["message"] == "bulk event 42"
    assert sample["expire_at"] > sample["timestamp"]
    # Every offset is committed once the write is done, and nothing was seen twice.
    group = f"writer-{mongo_database}"
    await eventually(
        lambda: _committed_is(topics.main, group, EVENTS), what="all offsets committed"
    )
    assert await metric(writer.url, "logriver_writer_events_written_total") == EVENTS
    assert await metric(writer.url, "logriver_writer_duplicates_skipped_total") == 0
    assert await metric(writer.url, "logriver_writer_ingest_to_stored_seconds_count") == EVENTS


async def _all_stored(client: MongoClient, database: str) -> bool:
    return await count_logs(client, database) >= EVENTS


async def _committed_is(topic: str, group: str, expected: int) -> bool:
    return await committed_total(topic, group) == expected
