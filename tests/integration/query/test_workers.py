"""The query service with several worker processes (``LOGRIVER_QUERY_WORKERS``).

Each worker opens its own MongoDB, Redis and PostgreSQL clients; the cache is
Redis, so the workers share it. Answers close their connection now and then
(``LOGRIVER_QUERY_REQUESTS_PER_CONNECTION``), and ``/metrics`` sums the workers.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from logriver_common.auth import DEV_KEY
from tests.conftest import StartService
from tests.metrics import metric_value, worker_counter

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

LOOKUPS = "logriver_query_cache_requests_total"


async def _histogram(url: str, n: int) -> httpx.Response:
    """A histogram with its own ``until`` (its own cache key), on its own connection."""
    until = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=n)
    params = {"since": (until - timedelta(hours=1)).isoformat(), "until": until.isoformat()}
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": DEV_KEY}, timeout=30) as http:
        return await http.get("/v1/stats/histogram", params=params)


async def test_two_query_workers_answer_on_one_port_and_sum_their_metrics(
    service_process: StartService, mongo_database: str, unique: str, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    query = service_process(
        "query",
        env={
            "LOGRIVER_MONGO_DATABASE": mongo_database,
            "LOGRIVER_REDIS_KEY_PREFIX": f"test-{unique}:",
            "LOGRIVER_QUERY_WORKERS": "2",
            # Every answer closes its connection.
            "LOGRIVER_QUERY_REQUESTS_PER_CONNECTION": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "LOGRIVER_OTEL_ENABLED": "false",
        },
    )
    workers = await query.running_workers(2)

    answers = await asyncio.gather(*(_histogram(query.url, n) for n in range(30)))
    assert [a.status_code for a in answers] == [200] * 30, answers[0].text
    assert all(a.headers["connection"] == "close" for a in answers)
    # Each request was a cache lookup in the worker that answered it. (A burst of new
    # connections may all go to one worker: its accept loop takes every pending one.)
    assert sum(worker_counter(metrics_dir, pid, LOOKUPS) for pid in workers) == 30
    for _ in range(4):  # whichever worker answers the scrape, it reports both
        async with httpx.AsyncClient(base_url=query.url, timeout=30) as http:
            text = (await http.get("/metrics")).text
        assert metric_value(text, LOOKUPS) == 30

    assert query.terminate(within=60) == 0
    assert not query.workers()
