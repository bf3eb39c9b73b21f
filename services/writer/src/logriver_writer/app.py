"""The writer service: the consumer runs as a task owned by the FastAPI lifespan.

HTTP (port 8004) serves only ``/healthz``, ``/readyz`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from logriver_common import clients
from logriver_common.app import create_service_app
from logriver_common.consumer_kit.dead_letters import DeadLetterQueue
from logriver_common.indexes import ensure_log_indexes
from logriver_common.web.health import Readiness
from logriver_writer.consumer import WriterConsumer
from logriver_writer.settings import WriterSettings

log = logging.getLogger(__name__)
CONSUMER_CHECK = "consumer"


def create_app(settings: WriterSettings | None = None) -> FastAPI:
    settings = settings or WriterSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mongo = clients.mongo_client(settings.mongo)
        producer = clients.kafka_producer(settings.kafka)
        await producer.start()
        readiness: Readiness = app.state.readiness
        readiness.add("kafka", partial(clients.check_kafka_producer, producer))
        readiness.add("mongodb", partial(clients.check_mongo, mongo))
        task: asyncio.Task[str | None] | None = None
        try:
            collection = mongo[settings.mongo.database][settings.mongo.collection]
            await ensure_log_indexes(collection)
            writer = WriterConsumer(
                settings=settings,
                consumer=clients.kafka_consumer(
                    settings.kafka,
                    group_id=settings.group_id,
                    session_timeout_ms=settings.session_timeout_ms,
                    heartbeat_interval_ms=min(3_000, settings.session_timeout_ms // 3),
                ),
                dlq=DeadLetterQueue(producer, settings.kafka.dlq_topic),
                collection=collection,
            )
            app.state.writer = writer
            task = asyncio.create_task(writer.run(), name="writer-consumer")
            task.add_done_callback(partial(_on_consumer_exit, readiness))
            yield
        finally:
            if task is not None:
                await _stop_consumer(app.state.writer, task, settings.shutdown_timeout_s)
            await producer.stop()
            await mongo.close()

    return create_service_app(
        name="writer",
        settings=settings,
        lifespan=lifespan,
        description="Health and metrics of the Kafka → MongoDB writer.",
    )


async def _stop_consumer(
    writer: WriterConsumer, task: asyncio.Task[str | None], timeout_s: float
) -> None:
    """Drain within ``timeout_s``; past it, cancel: the uncommitted rest is redelivered later."""
    writer.request_stop()
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        log.warning("writer did not drain in time; cancelling", extra={"timeout_s": timeout_s})
        task.cancel()
        await asyncio.wait({task}, timeout=5.0)


def _on_consumer_exit(readiness: Readiness, task: asyncio.Task[str | None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("writer consumer crashed", exc_info=error)
        readiness.fail(CONSUMER_CHECK, f"consumer crashed: {type(error).__name__}: {error}")
        return
    reason = task.result()
    if reason is not None:
        readiness.fail(CONSUMER_CHECK, reason)
