from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from logriver_alerter.settings import AlerterSettings
from logriver_common import clients
from logriver_common.app import create_service_app


def create_app(settings: AlerterSettings | None = None) -> FastAPI:
    settings = settings or AlerterSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = clients.kafka_producer(settings.kafka)
        await producer.start()
        mongo = clients.mongo_client(settings.mongo)
        pool = await clients.postgres_pool(settings.postgres)
        app.state.readiness.add("kafka", partial(clients.check_kafka_producer, producer))
        app.state.readiness.add("mongodb", partial(clients.check_mongo, mongo))
        app.state.readiness.add("postgres", partial(clients.check_postgres, pool))
        try:
            yield
        finally:
            await pool.close()
            await mongo.close()
            await producer.stop()

    return create_service_app(
        name="alerter",
        settings=settings,
        lifespan=lifespan,
        description="Alert rules, alerts and silences.",
    )
