from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from logriver_common import clients
from logriver_common.app import create_service_app
from logriver_stream.settings import StreamSettings


def create_app(settings: StreamSettings | None = None) -> FastAPI:
    settings = settings or StreamSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # No group: every stream instance reads every partition itself.
        consumer = clients.kafka_consumer(settings.kafka, group_id=None)
        await consumer.start()
        app.state.readiness.add("kafka", partial(clients.check_kafka_consumer, consumer))
        try:
            yield
        finally:
            await consumer.stop()

    return create_service_app(
        name="stream",
        settings=settings,
        lifespan=lifespan,
        description="Live tail of log events over SSE and WebSocket.",
    )
