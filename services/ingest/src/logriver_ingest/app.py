"""The ingest app: clients open in the lifespan (never at import), closed in reverse order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from redis.asyncio import Redis

from logriver_common import clients
from logriver_common.app import build_from_environment, create_service_app
from logriver_common.auth import ApiKeyStore
from logriver_common.web.connection_recycling import ConnectionRecyclingMiddleware
from logriver_ingest import otlp_grpc
from logriver_ingest.header_limit import HeaderLimitMiddleware
from logriver_ingest.openapi import install_openapi
from logriver_ingest.parsing import BodyLimits
from logriver_ingest.publisher import Publisher
from logriver_ingest.rate_limit import RateLimiter
from logriver_ingest.redaction import Redactor
from logriver_ingest.routes import Gateway, router
from logriver_ingest.settings import IngestSettings

DESCRIPTION = """Validates log events, redacts secrets and publishes them to Kafka.

A `202` (or the accepted part of a `207`) means Kafka acknowledged the events
with acks=all. Authenticate with `Authorization: Bearer <key>` or
`X-API-Key: <key>` (scope `ingest`). Errors have one shape:
`{"error": "<code>", "detail": ..., "request_id": "..."}`.
"""


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The exit stack closes what was opened, in reverse order, even if start-up fails.
        async with AsyncExitStack() as stack:
            producer = clients.kafka_producer(
                settings.kafka,
                linger_ms=settings.linger_ms,
                max_batch_size=settings.max_batch_size_bytes,
                compression_type=None if settings.compression == "none" else settings.compression,
            )
            await producer.start()
            # stop() flushes what is buffered, so in-flight requests still get their acks.
            stack.push_async_callback(producer.stop)
            pool = await clients.postgres_pool(settings.postgres)
            stack.push_async_callback(pool.close)
            redis = clients.redis_client(settings.redis)
            stack.push_async_callback(redis.aclose)

            store = ApiKeyStore(pool, cache_ttl_s=settings.api_key_cache_ttl_s)
            await store.prepare(local_mode=settings.mode == "local")
            app.state.api_keys = store
            app.state.gateway = _gateway(settings, producer, redis)
            # Ready means "can publish": only Kafka. Redis (the rate limiter) fails open
            # and keys are looked up per request (cached), so an outage of either must
            # not take every gateway out of the load balancer (issue 19).
            app.state.readiness.add("kafka", partial(clients.check_kafka_producer, producer))
            if settings.grpc_port:
                # OTLP/gRPC in this process and loop; stopped first, before the producer.
                grpc_server = await otlp_grpc.start_server(
                    app.state.gateway,
                    store,
                    host=settings.host,
                    port=settings.grpc_port,
                    max_message_bytes=settings.max_decompressed_bytes,
                    shared=settings.workers > 1,
                )
                stack.push_async_callback(otlp_grpc.stop_server, grpc_server)
            yield

    app = create_service_app(
        name="ingest", settings=settings, lifespan=lifespan, description=DESCRIPTION
    )
    app.include_router(router)
    app.add_middleware(
        ConnectionRecyclingMiddleware, bytes_per_connection=settings.bytes_per_connection
    )
    # Added last, so it is the outermost middleware: oversized headers cost nothing more.
    app.add_middleware(HeaderLimitMiddleware, max_header_bytes=settings.max_header_bytes)
    install_openapi(app, settings)
    return app


def app_from_environment() -> FastAPI:
    """The app from the environment's settings (uvicorn calls it in each worker)."""
    return build_from_environment(create_app, IngestSettings)


def _gateway(settings: IngestSettings, producer: AIOKafkaProducer, redis: Redis) -> Gateway:
    return Gateway(
        body_limits=BodyLimits(
            max_body_bytes=settings.max_body_bytes,
            max_decompressed_bytes=settings.max_decompressed_bytes,
            max_batch_events=settings.max_batch_events,
        ),
        validation_context=settings.event_limits().context(),
        retention=settings.retention,
        redactor=Redactor(settings.redaction_rules, settings.masked_metadata_keys),
        publisher=Publisher(
            producer,
            settings.kafka.topic,
            deadline_s=settings.publish_deadline_s,
            max_in_flight_events=settings.max_in_flight_events,
        ),
        rate_limiter=RateLimiter(
            redis,
            key_prefix=settings.redis.key_prefix,
            events_per_s=settings.rate_limit_events_per_s,
            burst_events=settings.rate_limit_burst_events,
        )
        if settings.rate_limit_enabled
        else None,
        unavailable_retry_after_s=settings.unavailable_retry_after_s,
    )
