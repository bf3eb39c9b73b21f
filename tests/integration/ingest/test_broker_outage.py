"""With its broker stopped the gateway answers 503 + Retry-After within the deadline;
after the broker is back, retried requests succeed and nothing acked is missing.

The shared broker on 9092 is never touched: this test runs a private one (the
devstack's Kafka with its own state directory and port) and its own gateway.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import StartService
from tests.integration.ingest.conftest import Keys, read_topic
from tests.processes import free_port
from tests.stack import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

DEADLINE_S = 3.0


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PrivateKafka:
    """A second single-node Kafka, started and stopped through devstack in a subprocess."""

    def __init__(self, state_dir: Path) -> None:
        self.port = next(p for p in iter(free_port, None) if _port_free(p + 1))
        self.env = {
            **os.environ,
            "LOGRIVER_STATE_DIR": str(state_dir),
            "LOGRIVER_KAFKA_PORT": str(self.port),
            "LOGRIVER_KAFKA_HEAP": "-Xmx256m -Xms128m",
        }

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _devstack(self, call: str) -> None:
        result = subprocess.run(
            [sys.executable, "-c", f"from devstack import kafka; kafka.{call}()"],
            env=self.env,
            check=False,
            timeout=180,
            capture_output=True,
            text=True,
        )
        # devstack names the failing step and its log file on stderr: show it.
        assert result.returncode == 0, f"private kafka.{call}() failed:\n{result.stderr[-3000:]}"

    async def start(self) -> None:
        await asyncio.to_thread(self._devstack, "start")

    async def stop(self) -> None:
        await asyncio.to_thread(self._devstack, "stop")


@pytest.fixture
async def private_kafka(tmp_path: Path) -> AsyncIterator[PrivateKafka]:
    kafka = PrivateKafka(tmp_path)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.stop()


def batch(prefix: str, count: int) -> list[dict[str, str]]:
    # Client-supplied ids: a retry of the same event is the same event.
    return [
        {"id": f"{prefix}-{i}", "service": f"outage-{i % 3}", "message": "m"} for i in range(count)
    ]


async def test_broker_outage_gives_503_then_retries_succeed_and_nothing_is_lost(
    private_kafka: PrivateKafka, service_process: StartService, keys: Keys, unique: str
) -> None:
    gateway = service_process(
        "ingest",
        env={
            "LOGRIVER_KAFKA_BOOTSTRAP_SERVERS": private_kafka.bootstrap,
            "LOGRIVER_INGEST_PUBLISH_DEADLINE_S": str(DEADLINE_S),
            "LOGRIVER_OTEL_ENABLED": "false",
        },
    )
    auth = {"Authorization": f"Bearer {keys.ingest}"}
    acked: set[str] = set()
    async with httpx.AsyncClient(base_url=gateway.url, headers=auth, timeout=30) as http:
        # Before: a small request (the producer's own batching) and a large one (hand-built
        # batches) are both acked.
        for events in (batch(f"before-s-{unique}", 5), batch(f"before-l-{unique}", 500)):
            response = await http.post("/v1/logs", json=events)
            assert response.status_code == 202, response.text
            acked.update(response.json()["ids"])

        await private_kafka.stop()
        during = [batch(f"during-s-{unique}", 5), batch(f"during-l-{unique}", 500)]
        for events in during:
            started = time.monotonic()
            response = await http.post("/v1/logs", json=events)
            elapsed = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "unavailable"
            assert int(response.headers["retry-after"]) >= 1
            assert elapsed < DEADLINE_S + 2.0, elapsed
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["kafka"]["status"] == "down"

        await private_kafka.start()

        async def retried(events: list[dict[str, str]]) -> list[str] | None:
            response = await http.post("/v1/logs", json=events)
            assert response.status_code in (202, 503), response.text
            return response.json()["ids"] if response.status_code == 202 else None

        for events in during:
            acked.update(await eventually(partial(retried, events), within=90, interval=1.0))
        after = await http.post("/v1/logs", json=batch(f"after-{unique}", 200))
        assert after.status_code == 202
        acked.update(after.json()["ids"])

    assert len(acked) == 5 + 500 + 5 + 500 + 200
    records = await read_topic("logs.v1", expect=len(acked), bootstrap=private_kafka.bootstrap)
    stored = {orjson.loads(r.value)["id"] for r in records}
    # Every acked event is there. Records handed over before a 503 may arrive as well
    # (at-least-once); they carry the same ids, so storage keeps each event once.
    assert acked <= stored
    assert stored <= acked
