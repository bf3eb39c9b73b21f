"""With Redis unreachable the gateway stays ready and keeps accepting logs.

The rate limiter fails open (docs/ingest.md): each request admitted without a
check is counted in ``logriver_ingest_rate_limiter_unavailable_total`` and the
gateway logs a warning. The gateway's readiness depends on Kafka only, so a
Redis outage never takes every replica out of the load balancer.
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.conftest import StartService, Topics
from tests.integration.ingest.conftest import Keys, read_topic
from tests.metrics import metric_value
from tests.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

METRIC = "logriver_ingest_rate_limiter_unavailable_total"


async def test_a_dead_redis_neither_unreadies_the_gateway_nor_stops_logs(
    service_process: StartService, topics: Topics, keys: Keys, unique: str
) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    gateway = service_process(
        "ingest",
        env={
            **topics.env(),
            "LOGRIVER_REDIS_URL": dead_redis,
            "LOGRIVER_INGEST_RATE_LIMIT_ENABLED": "true",
            # A tiny bucket: with Redis up, the second request would be limited.
            "LOGRIVER_INGEST_RATE_LIMIT_EVENTS_PER_S": "1",
            "LOGRIVER_INGEST_RATE_LIMIT_BURST_EVENTS": "10",
            "LOGRIVER_INGEST_MAX_BATCH_EVENTS": "10",
            "LOGRIVER_INGEST_API_KEY_CACHE_TTL_S": "5",
            "LOGRIVER_OTEL_ENABLED": "false",
        },
    )  # service_process waits for /readyz 200: ready with Redis down
    auth = {"Authorization": f"Bearer {keys.ingest}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=auth, timeout=30) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["checks"]) == {"kafka"}
        before = metric_value((await http.get("/metrics")).text, METRIC)
        ids: list[str] = []
        for request in range(5):
            events = [
                {
                    "id": f"redis-down-{unique}-{request}-{i}",
                    "service": "redis-down",
                    "message": "m",
                }
                for i in range(10)
            ]
            response = await http.post("/v1/logs", json=events)
            assert response.status_code == 202, response.text
            ids.extend(response.json()["ids"])
        after = metric_value((await http.get("/metrics")).text, METRIC)
    # Every request went through unlimited (50 events > the 10-event burst) and was counted.
    assert after - before == 5
    records = await read_topic(topics.main, expect=len(ids))
    assert {orjson.loads(r.value)["id"] for r in records} == set(ids)
    log = gateway.log_path.read_text(errors="replace")
    warnings = [line for line in log.splitlines() if "rate limiter unavailable" in line]
    # One warning, not one per request.
    assert len(warnings) == 1, warnings
