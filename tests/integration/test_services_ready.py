"""Every service, started by this test on its own port, reports exactly its dependencies as up.

The test does not depend on `make up` having started the services: each one is
started here against this test's own topics, database and key prefix, and its
``/readyz`` must list exactly the checks below (a new or dropped dependency is a
change the test has to be told about).
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Topics
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

EXPECTED: dict[str, set[str]] = {
    # The gateway: Redis fails open and keys are checked per request (cached).
    "ingest": {"kafka"},
    "query": {"mongodb", "redis", "postgres"},
    "stream": {"postgres", "kafka"},
    "alerter": {"kafka", "mongodb", "postgres"},
    "writer": {"kafka", "mongodb"},
    "relay": {"kafka"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_readyz_lists_exactly_its_dependencies_up(
    name: str,
    topics: Topics,
    mongo_database: str,
    postgres_dsn: str,
    unique: str,
) -> None:
    env = {
        **topics.env(),
        "LOGRIVER_MONGO_DATABASE": mongo_database,
        "LOGRIVER_POSTGRES_DSN": postgres_dsn,
        "LOGRIVER_REDIS_KEY_PREFIX": f"test-{unique}:",
        "LOGRIVER_OTEL_ENABLED": "false",
        "LOGRIVER_ALERTER_GROUP_ID": f"alerter-{unique}",
        "LOGRIVER_WRITER_GROUP_ID": f"writer-{unique}",
        "LOGRIVER_INGEST_RELAY_GROUP_ID": f"relay-{unique}",
    }
    if name == "relay":
        proc = ServiceProcess(
            "ingest", env, unique, args=("relay",), port_env="LOGRIVER_INGEST_RELAY_PORT"
        )
    else:
        proc = ServiceProcess(name, env, unique)
    proc.start()
    try:
        proc.wait_ready()
        async with httpx.AsyncClient(base_url=proc.url, timeout=5) as http:
            ready = await http.get("/readyz")
            alive = await http.get("/healthz")
            metrics = await http.get("/metrics")
    finally:
        proc.kill()
    assert alive.status_code == 200
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert set(checks) == EXPECTED[name]
    assert all(c["status"] == "up" for c in checks.values()), checks
    assert metrics.status_code == 200
