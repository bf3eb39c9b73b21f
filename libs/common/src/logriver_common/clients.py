"""Client factories, opened in lifespans (never at import time), and their readiness checks."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.helpers import create_ssl_context
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from logriver_common.settings import KafkaSettings, MongoSettings, PostgresSettings, RedisSettings

MongoDocument = dict[str, Any]


def kafka_security_options(settings: KafkaSettings) -> dict[str, Any]:
    """aiokafka's connection security options (SASL and/or TLS) from the settings."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        # Verifies the broker against ssl_cafile (Strimzi's cluster CA), or the system CAs.
        options["ssl_context"] = create_ssl_context(cafile=settings.ssl_cafile)
    if settings.security_protocol.startswith("SASL_"):
        assert settings.sasl_password is not None  # noqa: S101 - checked by KafkaSettings
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


def kafka_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """A durable producer: acks from all in-sync replicas, lz4-compressed.

    Not Kafka-idempotent, on purpose. aiokafka treats OutOfOrderSequenceNumber as
    fatal: when a broker restart loses in-flight batches, the sequence gap kills
    the producer's sender for good (the Java client bumps the producer epoch
    instead; aiokafka does not), and every later send fails. Exactly-once storage
    does not need it: a retried or duplicated record carries the same event ``id``
    and the writer stores it once. Ordering per partition holds without it because
    aiokafka keeps at most one batch per partition in flight.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "acks": "all",
        "enable_idempotence": False,
        "compression_type": "lz4",
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": settings.request_timeout_ms,
        **kafka_security_options(settings),
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def kafka_consumer(settings: KafkaSettings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer that never auto-commits: offsets are committed after the work is done."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "request_timeout_ms": max(settings.request_timeout_ms, 40_000),
        **kafka_security_options(settings),
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


def mongo_client(settings: MongoSettings, **overrides: Any) -> AsyncMongoClient[MongoDocument]:
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": settings.server_selection_timeout_ms,
        "tz_aware": True,
        "uuidRepresentation": "standard",
    }
    options.update(overrides)
    return AsyncMongoClient(settings.uri.get_secret_value(), **options)


def redis_client(settings: RedisSettings) -> Redis:
    return Redis.from_url(
        settings.url.get_secret_value(), socket_timeout=2.0, socket_connect_timeout=2.0
    )


# "PostgreSQL cannot answer now": server errors, a closed pool or connection, the network
# (timeouts are OSErrors), and InternalClientError, which asyncpg raises when a connection
# the server dropped mid-operation is reset on its way back to the pool ("cannot switch to
# state 15; another operation is in progress"; seen when PostgreSQL restarts under load).
POSTGRES_UNAVAILABLE: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


async def postgres_pool(settings: PostgresSettings) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        settings.dsn.get_secret_value(),
        min_size=settings.min_pool_size,
        max_size=settings.max_pool_size,
        command_timeout=10,
    )
    assert pool is not None  # noqa: S101 - create_pool returns None only when awaited lazily
    return pool


async def check_kafka_producer(producer: AIOKafkaProducer) -> None:
    """The broker answers, and this producer can still send.

    aiokafka's sender task ends for good on a fatal error; the producer then
    fails every send while metadata requests still succeed, so a metadata check
    alone would call a dead producer ready. (``_sender`` is private: there is no
    public way to ask.)
    """
    task = producer._sender.sender_task
    if task is None or task.done():
        raise ConnectionError("the Kafka producer's sender has stopped")
    await producer.client.fetch_all_metadata()


async def check_kafka_consumer(consumer: AIOKafkaConsumer) -> None:
    await consumer.topics()


async def check_mongo(client: AsyncMongoClient[MongoDocument]) -> None:
    await client.admin.command("ping")


async def check_redis(client: Redis) -> None:
    await client.ping()


async def check_postgres(pool: asyncpg.Pool) -> None:
    await pool.fetchval("SELECT 1")
