"""The relay process: the :class:`~logriver_ingest.relay.Relay` loop owned by a FastAPI
lifespan, with ``/healthz``, ``/readyz`` and ``/metrics`` on its own port (8005).

``python -m logriver_ingest relay`` runs it. It is part of the ingest service
because it is the gateway's door for the raw topic: same settings
(``LOGRIVER_INGEST_*`` limits, redaction rules, ``LOGRIVER_RETENTION``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

from fastapi import FastAPI

from logriver_common import clients
from logriver_common.app import create_service_app
from logriver_common.consumer_kit.backoff import Backoff
from logriver_common.lifespan import Supervisor
from logriver_common.web.health import Readiness
from logriver_ingest.redaction import Redactor
from logriver_ingest.relay import Door, Relay
from logriver_ingest.settings import IngestSettings

LOOP_CHECK = "relay"
STOP_TIMEOUT_S = 10.0


def create_relay_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        readiness: Readiness = app.state.readiness
        async with AsyncExitStack() as stack:
            producer = clients.kafka_producer(settings.kafka)
            await producer.start()
            stack.push_async_callback(producer.stop)
            readiness.add("kafka", partial(clients.check_kafka_producer, producer))
            relay = Relay(
                consumer=clients.kafka_consumer(settings.kafka, group_id=settings.relay_group_id),
                producer=producer,
                door=door_from(settings),
                raw_topic=settings.kafka.raw_topic,
                topic=settings.kafka.topic,
                dlq_topic=settings.kafka.dlq_topic,
                fetch_max_records=settings.relay_fetch_max_records,
                backoff=lambda: Backoff(
                    settings.retry_initial_backoff_s, settings.retry_max_backoff_s
                ),
            )
            app.state.relay = relay
            # SIGTERM: finish the turn in flight (publish, commit); past the timeout, cancel.
            Supervisor(stack, readiness).spawn(
                LOOP_CHECK, relay.run(), stop=relay.request_stop, drain_timeout_s=STOP_TIMEOUT_S
            )
            yield

    return create_service_app(
        name="relay",
        settings=settings.model_copy(update={"port": settings.relay_port}),
        lifespan=lifespan,
        description="Health and metrics of the relay (logs.raw.v1 → the gateway's rule → logs.v1).",
    )


def door_from(settings: IngestSettings) -> Door:
    return Door(
        context=settings.event_limits().context(),
        redactor=Redactor(settings.redaction_rules, settings.masked_metadata_keys),
        retention=settings.retention,
        max_record_bytes=settings.relay_max_record_bytes,
    )
