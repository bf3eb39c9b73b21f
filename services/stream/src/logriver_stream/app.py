"""The stream service app: live tail over SSE and WebSocket with exact resume."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from logriver_common import clients
from logriver_common.app import create_service_app
from logriver_common.auth import ApiKeyStore
from logriver_common.lifespan import Supervisor
from logriver_stream.budget import RegexBudget
from logriver_stream.cursor import CursorCodec
from logriver_stream.filters import RegexCompiler, RegexLimits
from logriver_stream.hub import Admission, Hub
from logriver_stream.keywatch import KeyWatch
from logriver_stream.routes import router
from logriver_stream.session import SHUTTING_DOWN, StreamContext
from logriver_stream.settings import StreamSettings
from logriver_stream.source import KafkaSource


def create_app(settings: StreamSettings | None = None) -> FastAPI:
    settings = settings or StreamSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Each close is registered right after its open: a failed start closes what it opened.
        async with AsyncExitStack() as stack:
            pool = await clients.postgres_pool(settings.postgres)
            stack.push_async_callback(pool.close)
            app.state.readiness.add("postgres", partial(clients.check_postgres, pool))
            store = ApiKeyStore(pool)
            await store.prepare(local_mode=settings.mode == "local")
            app.state.api_keys = store
            codec = CursorCodec(settings.kafka.topic)
            budget = RegexBudget(
                per_window_s=settings.regex_budget_ms / 1000,
                window_s=settings.regex_budget_window_seconds,
            )
            hub = Hub(codec, budget)
            admission = Admission(
                max_total=settings.max_subscribers,
                max_per_key=settings.max_subscribers_per_key,
                max_regex_per_key=settings.regex_max_per_key,
            )
            source = KafkaSource(settings, hub, app.state.readiness)
            await source.start()
            stack.push_async_callback(source.stop)
            tasks = Supervisor(stack, app.state.readiness)
            # The read loop stops (cancelled) before the consumer it reads closes.
            tasks.spawn("live_source", source.run())
            watch = KeyWatch(store, admission, hub, interval_s=settings.key_recheck_seconds)
            app.state.readiness.add("kafka", source.check)
            app.state.stream = StreamContext(
                settings=settings,
                hub=hub,
                admission=admission,
                codec=codec,
                partitions=source.partitions,
                replays=asyncio.Semaphore(settings.max_concurrent_replays),
                regexes=RegexCompiler(
                    RegexLimits(
                        max_length=settings.regex_max_length,
                        max_program_size=settings.regex_max_program_size,
                        max_mem=settings.regex_max_mem,
                    )
                ),
            )
            # Revocation must not stop silently: a dead key watch fails readiness.
            tasks.spawn("key_watch", watch.run())
            yield
            hub.close_all(SHUTTING_DOWN)

    app = create_service_app(
        name="stream",
        settings=settings,
        lifespan=lifespan,
        description="Live tail of log events over SSE and WebSocket, with exact resume.",
    )
    app.include_router(router)
    # The web console (served by the query service, another origin) opens
    # EventSources here. Browsers send no credentials on them: the token is in
    # the URL, so allowing an origin grants nothing a token holder lacks.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET"],
        allow_headers=["Authorization", "X-API-Key", "Last-Event-ID"],
    )
    return app
