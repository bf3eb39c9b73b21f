"""A gateway with several worker processes (``LOGRIVER_INGEST_WORKERS``).

The workers share the port; each has its own producer. ``/metrics``, whichever
worker answers it, sums every worker's counters (prometheus_client's multiprocess
mode), keeps a dead worker's counts and forgets its in-flight gauges. A worker
killed with -9 is replaced, and the gateway keeps answering; SIGTERM stops them all.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import StartService, Topics
from tests.integration.ingest.conftest import Keys, read_topic
from tests.metrics import metric_value, worker_counter

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

ACCEPTED = "logriver_ingest_events_accepted_total"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _post(url: str, auth: dict[str, str], unique: str, request: int) -> list[str]:
    """One request on its own connection, so the kernel may hand it to either worker."""
    events = [
        {"id": f"workers-{unique}-{request}-{i}", "service": "workers", "message": f"m {i}"}
        for i in range(10)
    ]
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as http:
        response = await http.post("/v1/logs", json=events)
    assert response.status_code == 202, response.text
    ids: list[str] = response.json()["ids"]
    return ids


async def _scrape(url: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_two_workers_serve_one_port_and_sum_their_metrics(
    service_process: StartService, topics: Topics, keys: Keys, unique: str, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # A previous run's file in the operator's directory must not be added in; a file
    # that is not prometheus_client's stays.
    (metrics_dir / "counter_1.db").write_bytes(b"stale")
    (metrics_dir / "README").write_text("not ours")
    gateway = service_process(
        "ingest",
        env={
            **topics.env(),
            "LOGRIVER_INGEST_WORKERS": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "LOGRIVER_OTEL_ENABLED": "false",
        },
    )
    workers = await gateway.running_workers(2)
    assert not (metrics_dir / "counter_1.db").exists()
    assert (metrics_dir / "README").read_text() == "not ours"
    auth = {"Authorization": f"Bearer {keys.ingest}"}

    first = await asyncio.gather(*(_post(gateway.url, auth, unique, n) for n in range(30)))
    sent = [event_id for ids in first for event_id in ids]
    # The kernel spread the connections, so the sum below adds two workers' counts.
    assert all(worker_counter(metrics_dir, pid, ACCEPTED) > 0 for pid in workers)
    # Each scrape on a new connection: every worker's answer is the sum over both.
    for _ in range(6):
        assert metric_value(await _scrape(gateway.url), ACCEPTED) == len(sent)

    # kill -9 one worker: the supervisor starts another, the gateway keeps answering,
    # and the dead worker's counts stay in the total.
    os.kill(workers[0], 9)
    await gateway.running_workers(2, dead=workers[0])
    second = await asyncio.gather(*(_post(gateway.url, auth, unique, n) for n in range(30, 50)))
    sent += [event_id for ids in second for event_id in ids]
    text = await _scrape(gateway.url)
    assert metric_value(text, ACCEPTED) == len(sent)
    assert metric_value(text, "logriver_ingest_requests_in_flight") == 0
    assert not list(metrics_dir.glob(f"gauge_live*_{workers[0]}.db"))

    records = await read_topic(topics.main, expect=len(sent))
    assert sorted(orjson.loads(r.value)["id"] for r in records) == sorted(sent)

    # SIGTERM to the supervisor stops every worker gracefully.
    current = await gateway.running_workers(2)
    assert gateway.terminate(within=60) == 0
    assert not [pid for pid in current if _alive(pid)]


async def test_the_gateway_closes_connections_that_carried_their_share_of_bytes(
    service_process: StartService, topics: Topics, keys: Keys, unique: str
) -> None:
    """Through uvicorn: the response says ``Connection: close`` and the client reconnects."""
    gateway = service_process(
        "ingest",
        env={
            **topics.env(),
            # Any body is over a 1-byte share: every response closes its connection.
            "LOGRIVER_INGEST_BYTES_PER_CONNECTION": "1",
            "LOGRIVER_OTEL_ENABLED": "false",
        },
    )
    auth = {"Authorization": f"Bearer {keys.ingest}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=auth, timeout=30) as http:
        for n in range(3):
            event = {"id": f"recycle-{unique}-{n}", "service": "recycle", "message": "m"}
            response = await http.post("/v1/logs", json=[event])
            assert response.status_code == 202, response.text
            assert response.headers["connection"] == "close"
        # A request without a body (a scrape) keeps its connection.
        scrape = await http.get("/metrics")
        assert scrape.headers.get("connection", "keep-alive") != "close"
    assert len(await read_topic(topics.main, expect=3)) == 3
