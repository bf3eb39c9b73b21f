"""The one way a logriver service builds its FastAPI app."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar

import uvicorn
from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from logriver_common.http_protocol import CoalescingHttpToolsProtocol
from logriver_common.service_logging import configure_logging
from logriver_common.settings import ServiceSettings
from logriver_common.telemetry import instrument_app, setup_tracing
from logriver_common.web.errors import install_error_handlers
from logriver_common.web.health import Readiness
from logriver_common.web.health import router as health_router
from logriver_common.web.middleware import RequestContextMiddleware

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def create_service_app(
    *,
    name: str,
    settings: ServiceSettings,
    lifespan: Lifespan,
    description: str = "",
    front_middleware: Sequence[Middleware] = (),
) -> FastAPI:
    """An app with the shared plumbing; ``lifespan`` opens and closes the service's clients.

    The request context (request id, response time) is the outermost middleware, and
    ``front_middleware`` (plain ASGI, in the order given) runs inside it but in front of
    error handling and tracing: there an answer that needs neither (the query service's
    hot answers) costs half the CPU it costs behind them. An exception from further in
    still reaches them as a 500, which ``ServerErrorMiddleware`` has sent.

    The service lifespan runs inside one that owns tracing, so spans from the
    service's shutdown are still exported before the provider closes.
    """
    configure_logging(name, settings.log_level)
    provider = setup_tracing(name, settings.telemetry)

    @asynccontextmanager
    async def outer(app: FastAPI) -> AsyncIterator[None]:
        app.state.readiness = Readiness()
        app.state.settings = settings
        try:
            async with lifespan(app):
                yield
        finally:
            provider.shutdown()

    app = FastAPI(title=f"logriver {name}", description=description, lifespan=outer)
    install_error_handlers(app)
    app.include_router(health_router)
    instrument_app(app, provider)
    front = [Middleware(RequestContextMiddleware), *front_middleware]
    build = app.build_middleware_stack  # error handling, tracing and routing

    def build_with_front() -> ASGIApp:
        stack = build()
        for middleware in reversed(front):  # each wraps the ones after it
            stack = middleware.cls(stack, *middleware.args, **middleware.kwargs)
        return stack

    app.build_middleware_stack = build_with_front  # type: ignore[method-assign]
    return app


def run_service(app: ASGIApp, settings: ServiceSettings) -> None:
    """Serve ``app`` with uvicorn, keeping the JSON logging configured above."""
    tune_garbage_collector(settings.gc_young_threshold)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=10,
        http=CoalescingHttpToolsProtocol,
    )


def build_from_environment(
    create_app: Callable[[SettingsT], FastAPI], settings_type: type[SettingsT]
) -> FastAPI:
    """The app ``workers.run_workers``' factory returns (in each worker, or in this process).

    The settings come from the same environment as the supervisor's; the garbage
    collector is tuned here because a worker is a fresh interpreter.
    """
    settings = settings_type()
    app = create_app(settings)
    tune_garbage_collector(settings.gc_young_threshold)
    return app


def tune_garbage_collector(young_threshold: int) -> None:
    """Never scan what start-up built; collect young objects every ``young_threshold``.

    ``freeze`` moves everything built before serving (modules, the app, its
    routes) to a generation no collection scans, so a full collection walks
    only what serving created.

    The threshold is 50,000 (Python's is 700) in every service but the query
    service. Each holds many objects for a while: a fetched batch (writer,
    alerter, relay), a request's batch until Kafka acks it (gateway), 1,000
    live-tail connections (stream). At 700 the young collection ran every few
    hundred events and moved those objects up the generations until a full
    collection was due, collecting nothing (reference counting frees them).
    CPU in the collector at 700 under the e2e bench's load (docs/performance.md,
    tenth pass): writer 11.6%, alerter 8.5%, gateway 4.9%, stream 4.8%; at
    50,000 none of them collected at all. In the stream service, with 1,000 SSE
    clients, twelve full collections in 25 s (180-250 ms each) were the live
    tail's p99; at 50,000 none ran and p99 went from 254-279 to 171-185 ms.
    The query service keeps 700: its request's objects die with the request
    (1.5% of its CPU in the collector), and at 50,000 its cached answers cost a
    little more CPU.
    """
    gc.set_threshold(young_threshold, 10, 10)
    gc.collect()
    gc.freeze()
