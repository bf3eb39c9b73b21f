"""The query service app: API routes, metrics and the console's static files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pymongo.monitoring import CommandListener
from starlette.middleware import Middleware

from logriver_common import clients
from logriver_common.app import build_from_environment, create_service_app
from logriver_common.auth import ApiKeyStore
from logriver_common.web.connection_recycling import ConnectionRecyclingMiddleware
from logriver_common.web.errors import error_response
from logriver_query import console_api, trace_view
from logriver_query.cache import AggregationCache
from logriver_query.hot_answers import HotAnswerMiddleware, HotAnswers
from logriver_query.metrics import LatencyMiddleware
from logriver_query.routes import QueryContext, router
from logriver_query.settings import QuerySettings

CONSOLE_DIR = Path(__file__).parent / "console"


def create_app(
    settings: QuerySettings | None = None,
    *,
    mongo_listeners: Sequence[CommandListener] = (),
) -> FastAPI:
    """``mongo_listeners`` lets tests watch where each database command goes."""
    settings = settings or QuerySettings()
    hot_answers = HotAnswers(
        max_age_s=settings.hot_answer_seconds, max_bytes=settings.hot_answer_max_bytes
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Each close is registered right after its open: a failed start closes what it opened.
        async with AsyncExitStack() as stack:
            mongo = clients.mongo_client(settings.mongo, event_listeners=list(mongo_listeners))
            stack.push_async_callback(mongo.close)
            redis = clients.redis_client(settings.redis)
            stack.push_async_callback(redis.aclose)
            pool = await clients.postgres_pool(settings.postgres)
            stack.push_async_callback(pool.close)
            store = ApiKeyStore(pool)
            await store.prepare(local_mode=settings.mode == "local")
            app.state.api_keys = store
            collection = mongo[settings.mongo.database][settings.mongo.collection]
            app.state.query = QueryContext(
                settings=settings,
                collection=collection,
                cache=AggregationCache(
                    redis, ttl_s=settings.cache_ttl_seconds, lock_ms=settings.cache_lock_ms
                ),
                hot_answers=hot_answers,
                stream_tokens=settings.stream_tokens,
            )
            app.state.readiness.add("mongodb", partial(clients.check_mongo, mongo))
            app.state.readiness.add("redis", partial(clients.check_redis, redis))
            app.state.readiness.add("postgres", partial(clients.check_postgres, pool))
            yield

    app = create_service_app(
        name="query",
        settings=settings,
        lifespan=lifespan,
        description="Search and aggregate stored logs; the web console is at `/`.",
        front_middleware=[
            Middleware(
                ConnectionRecyclingMiddleware,
                requests_per_connection=settings.requests_per_connection,
            ),
            Middleware(LatencyMiddleware),
            Middleware(HotAnswerMiddleware, answers=hot_answers),
        ],
    )
    # The query API takes no body: every validation failure is a bad parameter, which
    # this API has always answered with 400 (see docs/query.md), like its own checks.
    app.add_exception_handler(RequestValidationError, invalid_parameter)
    app.openapi = partial(_openapi_without_422, app)  # type: ignore[method-assign]
    app.include_router(router)
    app.include_router(trace_view.router)
    app.include_router(console_api.router)
    # Last: the mount at "/" would otherwise shadow every route registered after it.
    app.mount("/", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    return app


def app_from_environment() -> FastAPI:
    """The app from the environment's settings (uvicorn calls it in each worker)."""
    return build_from_environment(create_app, QuerySettings)


def _openapi_without_422(app: FastAPI) -> dict[str, Any]:
    """FastAPI lists a 422 on every operation with parameters; this API answers 400 instead."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        for operations in schema["paths"].values():
            for operation in operations.values():
                operation["responses"].pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
    return app.openapi_schema or {}


async def invalid_parameter(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    problems = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ()) if part not in ("query", "path")]
        name = ".".join(loc) or "request"
        problems.append(f"`{name[:64]}`: {err.get('msg', 'invalid')}")
    return error_response(400, "bad_request", "; ".join(problems))
