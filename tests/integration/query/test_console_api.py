"""The console's alerter reads: whitelisted, bounded, and a clear error when the alerter is down.

Integration tier: "the alerter is down" is a real connection refused on a loopback port.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from logriver_common.app import create_service_app
from logriver_common.settings import ServiceSettings, TelemetrySettings
from logriver_query import console_api
from logriver_query.app import invalid_parameter


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def client() -> Iterator[TestClient]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.console_settings = console_api.ConsoleSettings(
            alerter_url=f"http://127.0.0.1:{closed_port()}", alerter_timeout_s=2
        )
        yield

    settings = ServiceSettings(telemetry=TelemetrySettings(enabled=False))
    app = create_service_app(name="test", settings=settings, lifespan=lifespan)
    app.add_exception_handler(RequestValidationError, invalid_parameter)
    app.include_router(console_api.router)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def error_of(resp: object) -> str:
    body = resp.json()  # type: ignore[attr-defined]
    assert set(body) == {"error", "detail", "request_id"}
    return str(body["error"])


@pytest.mark.parametrize(
    "path",
    [
        "/v1/console/alerter/alerts?url=http://evil",
        "/v1/console/alerter/alerts/current?$where=1",
        "/v1/console/alerter/alerts?" + "x" * 300 + "=1",
        "/v1/console/alerter/alerts/7?state=firing",
    ],
)
def test_unknown_parameters_are_refused(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 400
    assert error_of(resp) == "unknown_parameter"
    assert len(resp.json()["detail"]) < 120


def test_a_huge_query_is_refused(client: TestClient) -> None:
    resp = client.get("/v1/console/alerter/alerts?service=" + "a" * 5000)
    assert resp.status_code == 400
    assert error_of(resp) == "bad_request"


@pytest.mark.parametrize(
    "alert_id", ["0", "-1", "abc", "1" * 20, "..%2F..%2Frules", "%00", "1.5", "9" * 400]
)
def test_alert_ids_are_bounded(client: TestClient, alert_id: str) -> None:
    resp = client.get(f"/v1/console/alerter/alerts/{alert_id}")
    assert resp.status_code in (400, 404)
    assert error_of(resp) in ("bad_request", "not_found")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/console/alerter/alerts/current",
        "/v1/console/alerter/alerts?state=firing&limit=5",
        "/v1/console/alerter/alerts/42",
    ],
)
def test_an_unreachable_alerter_is_a_503(client: TestClient, path: str) -> None:
    resp = client.get(path, headers={"X-API-Key": "k"})
    assert resp.status_code == 503
    assert error_of(resp) == "alerter_unavailable"
    assert resp.headers["retry-after"] == "5"


def test_only_reads(client: TestClient) -> None:
    assert client.post("/v1/console/alerter/alerts", json={}).status_code == 405
    assert client.delete("/v1/console/alerter/alerts/1").status_code == 405
    assert client.get("/v1/console/alerter/rules").status_code == 404
