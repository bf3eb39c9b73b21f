from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from logriver_common import clients
from logriver_common.app import create_service_app
from logriver_query.settings import QuerySettings


def create_app(settings: QuerySettings | None = None) -> FastAPI:
    settings = settings or QuerySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mongo = clients.mongo_client(settings.mongo)
        redis = clients.redis_client(settings.redis)
        pool = await clients.postgres_pool(settings.postgres)
        app.state.readiness.add("mongodb", partial(clients.check_mongo, mongo))
        app.state.readiness.add("redis", partial(clients.check_redis, redis))
        app.state.readiness.add("postgres", partial(clients.check_postgres, pool))
        try:
            yield
        finally:
            await pool.close()
            await redis.aclose()
            await mongo.close()

    return create_service_app(
        name="query",
        settings=settings,
        lifespan=lifespan,
        description="Search and aggregate stored logs.",
    )
