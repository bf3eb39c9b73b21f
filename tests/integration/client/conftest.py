"""Helpers for the client's integration tests: a restartable gateway and a topic reader."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from tests.processes import ServiceProcess
from tests.stack import STACK


def restart_on_same_port(old: ServiceProcess, env: dict[str, str], tag: str) -> ServiceProcess:
    """A new gateway process on the port of ``old`` (the client keeps its URL)."""
    proc = ServiceProcess("ingest", env, tag=tag)
    # ServiceProcess picks a free port (and sets it last in the environment): reuse the old one.
    proc.port = old.port
    proc.env["LOGRIVER_INGEST_PORT"] = str(old.port)
    proc.start()
    return proc.wait_ready()


async def read_topic(
    topic: str, *, until: Callable[[list[dict[str, Any]]], bool], within: float = 90.0
) -> list[dict[str, Any]]:
    """Every record of ``topic`` from the beginning, polled until ``until(records)``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=STACK.kafka,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for messages in batches.values():
                records.extend(json.loads(m.value) for m in messages)
            if until(records):
                return records
        raise AssertionError(f"{topic}: condition not reached in {within}s ({len(records)} read)")
    finally:
        await consumer.stop()


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the writer stores: one document per event id."""
    return {r["id"]: r for r in records}
