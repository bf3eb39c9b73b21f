"""The real MongoDB replica set, Redis and PostgreSQL through the shared client factories."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from pymongo import ReadPreference, WriteConcern
from pymongo.read_concern import ReadConcern

from logriver_common import clients
from logriver_common.settings import MongoSettings, PostgresSettings, RedisSettings
from tests.stack import STACK

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]


async def test_replica_set_has_one_primary_and_two_secondaries() -> None:
    client = clients.mongo_client(MongoSettings(uri=SecretStr(STACK.mongo_uri)))
    try:
        status = await client.admin.command("replSetGetStatus")
    finally:
        await client.close()
    states = sorted(m["stateStr"] for m in status["members"])
    assert states == ["PRIMARY", "SECONDARY", "SECONDARY"]
    assert status["set"] == "rs0"


async def test_majority_write_is_read_back_from_a_secondary(unique: str) -> None:
    client = clients.mongo_client(MongoSettings(uri=SecretStr(STACK.mongo_uri)))
    db = client[f"test_{unique}"]
    try:
        writes = db.get_collection("c", write_concern=WriteConcern(w="majority"))
        reads = db.get_collection(
            "c",
            read_preference=ReadPreference.SECONDARY,
            read_concern=ReadConcern("majority"),
        )
        # A causally consistent session makes the secondary wait for our write.
        async with client.start_session(causal_consistency=True) as session:
            await writes.insert_one({"_id": "e1", "v": 1}, session=session)
            assert await reads.find_one({"_id": "e1"}, session=session) == {"_id": "e1", "v": 1}
    finally:
        await client.drop_database(f"test_{unique}")
        await client.close()


async def test_redis_round_trip(unique: str) -> None:
    redis = clients.redis_client(RedisSettings(url=SecretStr(STACK.redis_url)))
    try:
        await redis.set(f"test:{unique}", "v", ex=10)
        assert await redis.get(f"test:{unique}") == b"v"
    finally:
        await redis.delete(f"test:{unique}")
        await redis.aclose()


async def test_postgres_round_trip() -> None:
    pool = await clients.postgres_pool(PostgresSettings(dsn=SecretStr(STACK.postgres_dsn)))
    try:
        assert await pool.fetchval("SELECT current_database()") == "logriver"
        assert await pool.fetchval("SELECT $1::int + 1", 41) == 42
    finally:
        await pool.close()
