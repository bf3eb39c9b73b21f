"""Every service started by `make up` is ready and reports each dependency as up."""

from __future__ import annotations

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

EXPECTED = {
    8000: {"kafka"},  # the gateway: Redis fails open, keys are checked per request
    8001: {"mongodb", "redis", "postgres"},
    8002: {"kafka"},
    8003: {"kafka", "mongodb", "postgres"},
    8004: {"kafka", "mongodb"},
}


@pytest.mark.parametrize("port", sorted(EXPECTED))
async def test_readyz_lists_each_dependency_up(port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        ready = await http.get("/readyz")
        alive = await http.get("/healthz")
        metrics = await http.get("/metrics")
    assert alive.status_code == 200
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert set(checks) >= EXPECTED[port]
    assert all(c["status"] == "up" for c in checks.values())
    assert metrics.status_code == 200
