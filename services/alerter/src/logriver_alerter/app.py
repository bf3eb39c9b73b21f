from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pymongo.errors import PyMongoError

from logriver_alerter.body_limit import BodyLimitMiddleware
from logriver_alerter.consumer import AlertConsumer
from logriver_alerter.delivery import Dispatcher
from logriver_alerter.egress import EgressTransport
from logriver_alerter.evaluator import Evaluator
from logriver_alerter.json_body import JsonBodyMiddleware
from logriver_alerter.repositories import StorageUnavailable
from logriver_alerter.routes import router
from logriver_alerter.settings import AlerterSettings
from logriver_alerter.store import migrate, postgres_repositories
from logriver_common import clients
from logriver_common.app import create_service_app
from logriver_common.auth import ApiKeyStore
from logriver_common.consumer_kit.dead_letters import DeadLetterQueue
from logriver_common.lifespan import Supervisor
from logriver_common.web.errors import error_response
from logriver_common.web.health import Readiness

log = logging.getLogger(__name__)


async def _storage_unavailable(_: Request, exc: Exception) -> JSONResponse:
    """PostgreSQL cannot answer: a 503 the client may retry, never a 500."""
    log.warning("storage unavailable", extra={"error": str(exc)[:300]})
    return error_response(503, "storage_unavailable", "PostgreSQL is unavailable; retry later")


async def _commit_quietly(runner: AlertConsumer) -> None:
    try:
        await runner.commit()
    except Exception:
        log.warning("final commit failed", exc_info=True)


async def _every(seconds: float, step: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``step`` periodically; infrastructure errors are logged and retried next time."""
    while True:
        try:
            await step()
        except (StorageUnavailable, PyMongoError) as exc:
            log.warning("%s failed", what, extra={"error": str(exc)})
        await asyncio.sleep(seconds)


def create_app(settings: AlerterSettings | None = None) -> FastAPI:
    settings = settings or AlerterSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # httpx logs every request URL at INFO; webhook URLs and signatures are secrets.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        readiness: Readiness = app.state.readiness
        # Each close is registered right after its open: a failed start closes what it opened.
        async with AsyncExitStack() as stack:
            pool = await clients.postgres_pool(settings.postgres)
            stack.push_async_callback(pool.close)
            mongo = clients.mongo_client(settings.mongo)
            stack.push_async_callback(mongo.close)
            # Every delivery goes through the egress policy; no proxies from the environment
            # (a proxy would be the address checked, not the receiver).
            http = httpx.AsyncClient(
                transport=EgressTransport(settings.egress_policy()),
                follow_redirects=False,
                trust_env=False,
            )
            stack.push_async_callback(http.aclose)
            await migrate(pool)
            store = postgres_repositories(pool)
            api_keys = ApiKeyStore(pool)
            await api_keys.prepare(local_mode=settings.mode == "local")
            dispatcher = Dispatcher(store, settings, http, readiness)
            evaluator = Evaluator(store, dispatcher, settings)
            await evaluator.refresh()
            # Records that break the counting are dead-lettered (the consumer kit's isolation).
            producer = clients.kafka_producer(settings.kafka)
            await producer.start()
            stack.push_async_callback(producer.stop)
            consumer = clients.kafka_consumer(
                settings.kafka,
                group_id=settings.group_id,
                max_poll_records=5000,
                session_timeout_ms=settings.session_timeout_ms,
                heartbeat_interval_ms=max(1000, settings.session_timeout_ms // 4),
            )
            await consumer.start()
            stack.push_async_callback(consumer.stop)
            logs = mongo[settings.mongo.database][settings.mongo.collection]
            runner = AlertConsumer(
                consumer,
                evaluator,
                store,
                logs,
                topic=settings.kafka.topic,
                group_id=settings.group_id,
                commit_interval_s=settings.commit_interval_s,
                dlq=DeadLetterQueue(producer, settings.kafka.dlq_topic),
            )
            app.state.api_keys = api_keys
            app.state.store = store
            app.state.dispatcher = dispatcher
            app.state.evaluator = evaluator
            app.state.consumer = runner
            readiness.add("kafka", partial(clients.check_kafka_consumer, consumer))
            readiness.add("mongodb", partial(clients.check_mongo, mongo))
            readiness.add("postgres", partial(clients.check_postgres, pool))
            dispatcher.start()
            stack.push_async_callback(dispatcher.stop)
            # Last commit after the consumer task stopped; best effort: the rebuild covers it.
            stack.push_async_callback(_commit_quietly, runner)
            tasks = Supervisor(stack, readiness)
            tasks.spawn("consumer", runner.run())
            tasks.spawn("evaluator", _every(settings.eval_interval_s, evaluator.tick, "evaluation"))
            tasks.spawn(
                "rules", _every(settings.rules_refresh_s, evaluator.refresh, "rule refresh")
            )
            yield

    app = create_service_app(
        name="alerter",
        settings=settings,
        lifespan=lifespan,
        description="Alert rules, channels, alerts and silences.",
    )
    app.include_router(router)
    app.add_exception_handler(StorageUnavailable, _storage_unavailable)
    app.add_middleware(JsonBodyMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    return app
