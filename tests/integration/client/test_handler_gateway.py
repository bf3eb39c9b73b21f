"""The logging handler against the real gateway, which is stopped in the middle of the run."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from logriver_client import LogriverHandler, RetryPolicy
from logriver_client.kafka_transport import KafkaTransport
from logriver_common.auth import DEV_KEY
from tests.conftest import StartService, Topics
from tests.integration.client.conftest import by_id, read_topic, restart_on_same_port
from tests.stack import STACK, eventually

pytestmark = [pytest.mark.integration]

TOTAL = 50_000


def make_logger(name: str, handler: LogriverHandler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


async def test_50k_records_survive_a_gateway_restart_exactly_once(
    service_process: StartService, topics: Topics, unique: str
) -> None:
    gateway = service_process("ingest", topics.env())
    handler = LogriverHandler(
        gateway.url,
        service=f"client-{unique}",
        api_key=DEV_KEY,
        queue_size=TOTAL + 10_000,  # the outage must fit in the queue: nothing may be dropped
        batch_size=1000,
        flush_interval=0.2,
        retry=RetryPolicy(base_delay=0.05, max_delay=0.5),
    )
    logger = make_logger(f"it.handler.{unique}", handler)
    replacement = None
    try:
        for n in range(TOTAL // 2):
            logger.info("record %d", n, extra={"n": n})

        async def some_delivered() -> bool:
            return handler.stats().delivered >= 5_000

        await eventually(some_delivered, within=60, interval=0.05, what="first deliveries")

        gateway.terminate()  # SIGTERM: graceful, in-flight requests are answered
        for n in range(TOTAL // 2, TOTAL):
            logger.info("record %d", n, extra={"n": n})
        replacement = restart_on_same_port(gateway, topics.env(), f"{unique}-again")

        assert await handler.aflush(120), handler.stats()
        stats = handler.stats()
        assert (stats.delivered, stats.dropped, stats.failed, stats.rejected) == (TOTAL, 0, 0, 0)
    finally:
        logger.removeHandler(handler)
        handler.close(timeout=5)
        if replacement is not None:
            replacement.kill()

    records = await read_topic(topics.main, until=lambda rs: len(by_id(rs)) >= TOTAL)
    stored = by_id(records)
    numbers = Counter(r["metadata"]["n"] for r in stored.values())
    assert len(stored) == TOTAL
    assert set(numbers) == set(range(TOTAL))  # every record, each under one id only
    assert max(numbers.values()) == 1
    # Same id twice in the topic happens only when a reply was lost and the batch retried.
    assert len(records) - len(stored) <= 1000
    sample = stored[next(iter(stored))]
    assert sample["service"] == f"client-{unique}"
    assert sample["level"] == "INFO"


async def test_a_wrong_api_key_is_reported_not_retried(
    service_process: StartService, topics: Topics, unique: str
) -> None:
    gateway = service_process("ingest", topics.env())
    handler = LogriverHandler(gateway.url, service="client", api_key="lr_wrong_key-000000000000")
    logger = make_logger(f"it.badkey.{unique}", handler)
    try:
        for n in range(10):
            logger.info("denied %d", n)
        assert await handler.aflush(30)
        stats = handler.stats()
        assert (stats.rejected, stats.delivered) == (10, 0)
        assert stats.last_error is not None
        assert "401" in stats.last_error
    finally:
        logger.removeHandler(handler)
        handler.close(timeout=5)


async def test_kafka_mode_produces_the_same_events(topics: Topics, unique: str) -> None:
    handler = LogriverHandler(
        service=f"direct-{unique}",
        transport=KafkaTransport(STACK.kafka, topics.main),
        batch_size=500,
        flush_interval=0.1,
    )
    logger = make_logger(f"it.kafka.{unique}", handler)
    try:
        for n in range(2_000):
            logger.warning("direct %d", n, extra={"n": n})
        assert await handler.aflush(60), handler.stats()
    finally:
        logger.removeHandler(handler)
        handler.close(timeout=10)
    records = await read_topic(topics.main, until=lambda rs: len(by_id(rs)) >= 2_000)
    stored = by_id(records)
    assert sorted(r["metadata"]["n"] for r in stored.values()) == list(range(2_000))
    assert {r["service"] for r in stored.values()} == {f"direct-{unique}"}
    assert {r["level"] for r in stored.values()} == {"WARNING"}
