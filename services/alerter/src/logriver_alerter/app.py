from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import asyncpg
import httpx
from fastapi import FastAPI
from pymongo.errors import PyMongoError

from logriver_alerter.body_limit import BodyLimitMiddleware
from logriver_alerter.consumer import AlertConsumer
from logriver_alerter.delivery import Dispatcher
from logriver_alerter.egress import EgressTransport
from logriver_alerter.evaluator import Evaluator
from logriver_alerter.json_body import JsonBodyMiddleware
from logriver_alerter.routes import router
from logriver_alerter.settings import AlerterSettings
from logriver_alerter.store import Store
from logriver_common import clients
from logriver_common.app import create_service_app
from logriver_common.auth import ApiKeyStore
from logriver_common.consumer_kit.dead_letters import DeadLetterQueue
from logriver_common.web.health import Readiness

log = logging.getLogger(__name__)


async def _every(seconds: float, step: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``step`` periodically; infrastructure errors are logged and retried next time."""
    while True:
        try:
            await step()
        except (asyncpg.PostgresError, PyMongoError, OSError) as exc:
            log.warning("%s failed", what, extra={"error": str(exc)})
        await asyncio.sleep(seconds)


def _supervise(task: asyncio.Task[None], readiness: Readiness) -> None:
    """A background loop that dies makes the service unready instead of silently idle."""

    def done(t: asyncio.Task[None]) -> None:
        if not t.cancelled() and t.exception() is not None:
            log.error("%s stopped", t.get_name(), exc_info=t.exception())
            readiness.fail(t.get_name(), f"stopped: {t.exception()!r}"[:300])

    task.add_done_callback(done)


def create_app(settings: AlerterSettings | None = None) -> FastAPI:
    settings = settings or AlerterSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # httpx logs every request URL at INFO; webhook URLs and signatures are secrets.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        pool = await clients.postgres_pool(settings.postgres)
        mongo = clients.mongo_client(settings.mongo)
        # Every delivery goes through the egress policy; no proxies from the environment
        # (a proxy would be the address checked, not the receiver).
        http = httpx.AsyncClient(
            transport=EgressTransport(settings.egress_policy()),
            follow_redirects=False,
            trust_env=False,
        )
        store = Store(pool)
        await store.migrate()
        api_keys = ApiKeyStore(pool)
        await api_keys.prepare(local_mode=settings.mode == "local")
        dispatcher = Dispatcher(store, settings, http, app.state.readiness)
        evaluator = Evaluator(store, dispatcher, settings)
        await evaluator.refresh()
        consumer = clients.kafka_consumer(
            settings.kafka,
            group_id=settings.group_id,
            max_poll_records=5000,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(1000, settings.session_timeout_ms // 4),
        )
        await consumer.start()
        # Records that break the counting are dead-lettered (the consumer kit's isolation).
        producer = clients.kafka_producer(settings.kafka)
        await producer.start()
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
        readiness: Readiness = app.state.readiness
        readiness.add("kafka", partial(clients.check_kafka_consumer, consumer))
        readiness.add("mongodb", partial(clients.check_mongo, mongo))
        readiness.add("postgres", partial(clients.check_postgres, pool))
        dispatcher.start()
        tasks = [
            asyncio.create_task(runner.run(), name="consumer"),
            asyncio.create_task(
                _every(settings.eval_interval_s, evaluator.tick, "evaluation"), name="evaluator"
            ),
            asyncio.create_task(
                _every(settings.rules_refresh_s, evaluator.refresh, "rule refresh"), name="rules"
            ),
        ]
        for task in tasks:
            _supervise(task, readiness)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):  # best effort: the rebuild covers a lost commit
                await runner.commit()
            await consumer.stop()
            await producer.stop()
            await dispatcher.stop()
            await http.aclose()
            await mongo.close()
            await pool.close()

    app = create_service_app(
        name="alerter",
        settings=settings,
        lifespan=lifespan,
        description="Alert rules, channels, alerts and silences.",
    )
    app.include_router(router)
    app.add_middleware(JsonBodyMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    return app
