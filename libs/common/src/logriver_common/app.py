"""The one way a logriver service builds its FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import uvicorn
from fastapi import FastAPI
from starlette.middleware import Middleware

from logriver_common.service_logging import configure_logging
from logriver_common.settings import ServiceSettings
from logriver_common.telemetry import instrument_app, setup_tracing
from logriver_common.web.errors import install_error_handlers
from logriver_common.web.health import Readiness
from logriver_common.web.health import router as health_router
from logriver_common.web.middleware import RequestContextMiddleware

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    *,
    name: str,
    settings: ServiceSettings,
    lifespan: Lifespan,
    description: str = "",
    inner_middleware: Sequence[Middleware] = (),
) -> FastAPI:
    """An app with the shared plumbing; ``lifespan`` opens and closes the service's clients.

    ``inner_middleware`` runs inside the request context (request id, response time), in
    the order given, just before routing.

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
    # Each add wraps the ones before it: the inner middleware first, the context around it.
    for middleware in reversed(inner_middleware):
        app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health_router)
    instrument_app(app, provider)
    return app


def run_service(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve ``app`` with uvicorn, keeping the JSON logging configured above."""
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
