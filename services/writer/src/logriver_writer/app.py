"""The writer service: the consumer runs as a task owned by the FastAPI lifespan.

HTTP (port 8004) serves only ``/healthz``, ``/readyz`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

from fastapi import FastAPI

from logriver_common import clients
from logriver_common.app import create_service_app
from logriver_common.consumer_kit.dead_letters import DeadLetterQueue
from logriver_common.indexes import ensure_log_indexes
from logriver_common.lifespan import Supervisor
from logriver_common.web.health import Readiness
from logriver_writer.consumer import WriterConsumer
from logriver_writer.daily_backfill import backfill_daily
from logriver_writer.settings import WriterSettings

CONSUMER_CHECK = "consumer"


def create_app(settings: WriterSettings | None = None) -> FastAPI:
    settings = settings or WriterSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        readiness: Readiness = app.state.readiness
        async with AsyncExitStack() as stack:
            mongo = clients.mongo_client(settings.mongo)
            stack.push_async_callback(mongo.close)
            producer = clients.kafka_producer(settings.kafka)
            await producer.start()
            stack.push_async_callback(producer.stop)
            readiness.add("kafka", partial(clients.check_kafka_producer, producer))
            readiness.add("mongodb", partial(clients.check_mongo, mongo))
            collection = mongo[settings.mongo.database][settings.mongo.collection]
            await ensure_log_indexes(collection)
            # Finite, and never fatal to the writer (it retries its own failures), so it is not a
            # supervised task: readiness does not depend on it; shutdown cancels it.
            backfill = asyncio.create_task(backfill_daily(collection), name="daily_backfill")
            stack.push_async_callback(_cancel, backfill)
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
            # Drains within the shutdown timeout; past it, the uncommitted rest is redelivered.
            # A consumer that crashes or stops on its own (the DLQ ratio) fails readiness.
            Supervisor(stack, readiness).spawn(
                CONSUMER_CHECK,
                writer.run(),
                stop=writer.request_stop,
                drain_timeout_s=settings.shutdown_timeout_s,
            )
            yield

    return create_service_app(
        name="writer",
        settings=settings,
        lifespan=lifespan,
        description="Health and metrics of the Kafka → MongoDB writer.",
    )


async def _cancel(task: asyncio.Task[int]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
