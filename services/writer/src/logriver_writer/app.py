from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from logriver_common import clients
from logriver_common.app import create_service_app
from logriver_writer.settings import WriterSettings


def create_app(settings: WriterSettings | None = None) -> FastAPI:
    settings = settings or WriterSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mongo = clients.mongo_client(settings.mongo)
        producer = clients.kafka_producer(settings.kafka)
        await producer.start()
        app.state.readiness.add("kafka", partial(clients.check_kafka_producer, producer))
        app.state.readiness.add("mongodb", partial(clients.check_mongo, mongo))
        try:
            yield
        finally:
            await producer.stop()
            await mongo.close()

    return create_service_app(
        name="writer",
        settings=settings,
        lifespan=lifespan,
        description="Health and metrics of the Kafka → MongoDB writer.",
    )
