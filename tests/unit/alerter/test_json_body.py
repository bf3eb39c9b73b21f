"""The admin API reads bodies as JSON when the client sent no type or curl's default."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from logriver_alerter.body_limit import BodyLimitMiddleware
from logriver_alerter.json_body import JsonBodyMiddleware
from logriver_common.app import create_service_app
from logriver_common.settings import ServiceSettings, TelemetrySettings


class Spec(BaseModel):
    name: str


@pytest.fixture
def client() -> Iterator[TestClient]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    settings = ServiceSettings(telemetry=TelemetrySettings(enabled=False))
    app = create_service_app(name="test", settings=settings, lifespan=lifespan)

    @app.post("/v1/things")
    async def create(spec: Spec) -> dict[str, str]:
        return {"name": spec.name}

    @app.put("/v1/things/x")
    async def replace(spec: Spec) -> dict[str, str]:
        return {"name": spec.name}

    app.add_middleware(JsonBodyMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=1000)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


BODY = b'{"name": "oncall"}'


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/x-www-form-urlencoded",  # what `curl -d` sends
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ],
)
def test_json_whatever_the_label(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    for method in ("POST", "PUT"):
        path = "/v1/things" if method == "POST" else "/v1/things/x"
        resp = client.request(method, path, content=BODY, headers=headers)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"name": "oncall"}


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/xml",
        "\u00e9/\u00e9",
        "x" * 5000,
    ],
)
def test_other_types_are_a_clear_415(client: TestClient, content_type: str) -> None:
    headers = {b"content-type": content_type.encode("utf-8")}
    resp = client.post("/v1/things", content=BODY, headers=headers)
    assert resp.status_code == 415
    body = resp.json()
    assert body["error"] == "unsupported_media_type"
    assert "Content-Type: application/json" in body["detail"]
    assert len(body["detail"]) < 300
    assert body["request_id"] == resp.headers["x-request-id"]


@pytest.mark.parametrize(
    "content",
    [b"service=checkout&level=error", b"{", b"", b"[1, 2]", b"\xff\xfe", b"[" * 900],
)
def test_form_bodies_that_are_not_json_are_a_422(client: TestClient, content: bytes) -> None:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    resp = client.post("/v1/things", content=content, headers=headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "validation_failed"


def test_the_body_limit_still_holds(client: TestClient) -> None:
    resp = client.post("/v1/things", content=b'{"name": "' + b"x" * 2000 + b'"}')
    assert resp.status_code == 413


def test_reads_are_untouched(client: TestClient) -> None:
    resp = client.get("/v1/things", headers={"content-type": "text/plain"})
    assert resp.status_code == 405
