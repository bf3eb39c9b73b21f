"""The shared app plumbing: error shape, request ids, health and readiness."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from logriver_common.app import create_service_app, tune_garbage_collector
from logriver_common.settings import ServiceSettings, TelemetrySettings
from logriver_common.web.errors import ApiError
from logriver_query.settings import QuerySettings
from logriver_stream.settings import StreamSettings


async def _up() -> None:
    return None


async def _down() -> None:
    raise ConnectionError("refused")


async def _slow() -> None:
    await asyncio.sleep(10)


def build(checks: dict[str, object]) -> FastAPI:
    settings = ServiceSettings(telemetry=TelemetrySettings(enabled=False))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for name, check in checks.items():
            app.state.readiness.add(name, check)
        yield

    app = create_service_app(name="test", settings=settings, lifespan=lifespan)

    @app.get("/boom")
    async def boom() -> None:
        raise ApiError(409, "conflict", {"why": "because"}, headers={"Retry-After": "3"})

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("bug")

    @app.get("/typed")
    async def typed(n: int) -> dict[str, int]:
        return {"n": n}

    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(build({"ok": _up}), raise_server_exceptions=False) as c:
        yield c


def test_api_error_has_the_one_shape(client: TestClient) -> None:
    resp = client.get("/boom", headers={"X-Request-ID": "abc-123"})
    assert resp.status_code == 409
    assert resp.json() == {
        "error": "conflict",
        "detail": {"why": "because"},
        "request_id": "abc-123",
    }
    assert resp.headers["retry-after"] == "3"
    assert resp.headers["x-request-id"] == "abc-123"
    assert resp.headers["x-response-time"].endswith("ms")


def test_validation_errors_use_the_shape(client: TestClient) -> None:
    body = client.get("/typed", params={"n": "x"}).json()
    assert body["error"] == "validation_failed"
    assert body["detail"][0]["loc"] == ["query", "n"]
    assert body["request_id"]


def test_not_found_uses_the_shape(client: TestClient) -> None:
    resp = client.get("/nope")
    assert resp.status_code == 404
    assert resp.json()["error"] == "not_found"


def test_unexpected_errors_do_not_leak(client: TestClient) -> None:
    resp = client.get("/crash", headers={"X-Request-ID": "crash-1"})
    assert resp.status_code == 500
    body = resp.json()
    assert (body["error"], body["request_id"]) == ("internal_error", "crash-1")
    assert "bug" not in resp.text
    # The request context is outside error handling: a 500 says which request it was too.
    assert resp.headers["x-request-id"] == "crash-1"
    assert resp.headers["x-response-time"].endswith("ms")


def test_hostile_request_ids_are_replaced(client: TestClient) -> None:
    resp = client.get("/healthz", headers={"X-Request-ID": "<script>" + "x" * 300})
    assert resp.headers["x-request-id"] != "<script>" + "x" * 300
    assert len(resp.headers["x-request-id"]) == 32


def test_readyz_reports_each_dependency() -> None:
    with TestClient(build({"good": _up, "bad": _down, "slow": _slow})) as c:
        resp = c.get("/readyz")
    assert resp.status_code == 503
    checks = resp.json()["checks"]
    assert checks["good"]["status"] == "up"
    assert "latency_ms" in checks["good"]
    assert checks["bad"] == {"status": "down", "error": "ConnectionError: refused"}
    assert checks["slow"]["status"] == "down"
    assert "timed out" in checks["slow"]["error"]


def test_healthz_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "python_info" in metrics.text


def test_liveness_fails_only_for_what_a_restart_repairs(client: TestClient) -> None:
    readiness = client.app.state.readiness  # type: ignore[attr-defined]
    readiness.fail("consumer", "dead-letter ratio 0.9 above 0.5")  # stopped on purpose
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").json() == {"status": "alive"}
    readiness.fail("sweeper", "sweeper crashed: RuntimeError: bug", restart=True)
    alive = client.get("/healthz")
    assert alive.status_code == 503
    assert alive.json() == {
        "status": "broken",
        "reasons": {"sweeper": "sweeper crashed: RuntimeError: bug"},
    }


def test_services_collect_young_objects_rarely_and_freeze_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOGRIVER_GC_YOUNG_THRESHOLD", "20000")
    assert ServiceSettings().gc_young_threshold == 20_000
    monkeypatch.setenv("LOGRIVER_GC_YOUNG_THRESHOLD", "5")  # a collection every 5 allocations
    with pytest.raises(ValueError, match="LOGRIVER_GC_YOUNG_THRESHOLD"):
        ServiceSettings()
    monkeypatch.delenv("LOGRIVER_GC_YOUNG_THRESHOLD")
    assert ServiceSettings().gc_young_threshold == 50_000  # see tune_garbage_collector
    assert StreamSettings().gc_young_threshold == 50_000
    assert QuerySettings().gc_young_threshold == 700  # Python's own
    before = gc.get_threshold()
    try:
        tune_garbage_collector(StreamSettings().gc_young_threshold)
        assert gc.get_threshold() == (50_000, 10, 10)
        assert gc.get_freeze_count() > 0  # what start-up built is out of every scan
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
