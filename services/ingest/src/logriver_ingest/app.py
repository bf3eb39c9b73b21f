from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from logriver_common import clients
from logriver_common.app import create_service_app
from logriver_ingest.settings import IngestSettings


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = clients.kafka_producer(settings.kafka)
        await producer.start()
        pool = await clients.postgres_pool(settings.postgres)
        redis = clients.redis_client(settings.redis)
        app.state.readiness.add("kafka", partial(clients.check_kafka_producer, producer))
        app.state.readiness.add("postgres", partial(clients.check_postgres, pool))
        app.state.readiness.add("redis", partial(clients.check_redis, redis))
        try:
            yield
        finally:
            await redis.aclose()
            await pool.close()
            await producer.stop()

    return create_service_app(
        name="ingest",
        settings=settings,
        lifespan=lifespan,
        description="Validates log events and publishes them to Kafka.",
    )
