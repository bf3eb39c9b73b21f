"""Hostile input gets the documented 4xx with a useful body, never a 5xx, and
nothing invalid reaches Kafka."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import StartService, Topics
from tests.integration.ingest.conftest import Keys, OpenGateway, topic_size

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

NDJSON = {"Content-Type": "application/x-ndjson"}


def event(**fields: Any) -> dict[str, Any]:
    return {"service": "hostile", "message": "m", **fields}


CASES: list[tuple[str, dict[str, Any], int, str, str]] = [
    # (name, request kwargs, status, error code, a phrase the detail must contain)
    (
        "malformed json",
        {"content": b'{"service": "a",'},
        400,
        "malformed_json",
        "not valid UTF-8 JSON",
    ),
    ("not an object", {"content": b"[1, 2]"}, 422, "validation_failed", "JSON object"),
    ("scalar body", {"content": b"true"}, 400, "malformed_body", "object or an array"),
    ("empty body", {"content": b""}, 400, "empty_body", "no events"),
    ("wrong types", {"json": event(message=42, level=3)}, 422, "validation_failed", "message"),
    ("unknown level", {"json": event(level="loud")}, 422, "validation_failed", "unknown level"),
    ("missing service", {"json": {"message": "m"}}, 422, "validation_failed", "service"),
    ("unknown field", {"json": event(colour="red")}, 422, "validation_failed", "colour"),
    (
        "oversized message",
        {"json": event(message="x" * 40_000)},
        422,
        "validation_failed",
        "longer than 32768 bytes",
    ),
    (
        "dollar metadata key",
        {"json": event(metadata={"$where": "1"})},
        422,
        "validation_failed",
        "may not start with '$'",
    ),
    (
        "dotted metadata key",
        {"json": event(metadata={"a": {"b.c": 1}})},
        422,
        "validation_failed",
        "contain '.'",
    ),
    (
        "metadata too deep",
        {"json": event(metadata={"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}})},
        422,
        "validation_failed",
        "nested deeper",
    ),
    (
        "invalid utf-8",
        {"content": b'{"service": "a", "message": "\xff\xfe"}'},
        400,
        "malformed_json",
        "UTF-8",
    ),
    (
        "invalid utf-8 line",
        {"content": b'{"service": "a", "message": "\xc3\x28"}\n', "headers": NDJSON},
        422,
        "validation_failed",
        "UTF-8",
    ),
    (
        "10k-item batch",
        {"content": orjson.dumps([event()] * 10_000)},
        413,
        "batch_too_large",
        "10000 events",
    ),
    (
        "10k-line ndjson",
        {
            "content": b"\n".join([orjson.dumps(event())] * 10_000),
            "headers": NDJSON,
        },
        413,
        "batch_too_large",
        "at most 5000",
    ),
    (
        "body too large",
        {"content": b"[" + b" " * 6_000_000 + b"]"},
        413,
        "payload_too_large",
        "the body is larger",
    ),
    (
        "gzip bomb",
        {
            "content": gzip.compress(b"[" + b" " * 50_000_000 + b"]", compresslevel=9),
            "headers": {"Content-Encoding": "gzip"},
        },
        413,
        "payload_too_large",
        "decompressed body",
    ),
    (
        "not gzip",
        {"content": b"plain", "headers": {"Content-Encoding": "gzip"}},
        400,
        "malformed_body",
        "gzip",
    ),
    (
        "unsupported type",
        {"content": b"service=a", "headers": {"Content-Type": "text/plain"}},
        415,
        "unsupported_media_type",
        "text/plain",
    ),
    (
        "unsupported encoding",
        {"content": b"{}", "headers": {"Content-Encoding": "br"}},
        415,
        "unsupported_media_type",
        "br",
    ),
    (
        "huge header",
        {"json": event(), "headers": {"X-Padding": "a" * 100_000}},
        431,
        "headers_too_large",
        "LOGRIVER_INGEST_MAX_HEADER_BYTES",
    ),
]


async def test_hostile_requests_get_documented_4xx_and_publish_nothing(
    gateway: OpenGateway, topics: Topics
) -> None:
    async with gateway() as http:
        for name, kwargs, status, error, phrase in CASES:
            headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
            response = await http.post("/v1/logs", headers=headers, **kwargs)
            assert response.status_code == status, (name, response.text[:500])
            body = response.json()
            assert body["error"] == error, name
            assert phrase in orjson.dumps(body["detail"]).decode(), (name, body)
            if status == 422:
                # Per-item errors: which event, which field, what is wrong.
                assert all({"index", "errors"} <= set(item) for item in body["detail"]), name
    assert await topic_size(topics.main) == 0


async def test_huge_headers_against_the_real_server_are_refused(
    service_process: StartService, topics: Topics, keys: Keys
) -> None:
    """Through uvicorn itself, not just the ASGI app."""
    gateway = service_process("ingest", env={**topics.env(), "LOGRIVER_OTEL_ENABLED": "false"})
    auth = {"Authorization": f"Bearer {keys.ingest}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=auth, timeout=30) as http:
        huge_auth = await http.post(
            "/v1/logs", json=event(), headers={"Authorization": "Bearer " + "k" * 20_000}
        )
        many = await http.post(
            "/v1/logs", json=event(), headers={f"X-H{i}": "v" * 100 for i in range(2_000)}
        )
        huge_id = await http.post("/v1/logs", json=event(), headers={"X-Request-ID": "r" * 5_000})
    assert huge_auth.status_code == 401
    assert many.status_code == 431
    assert many.json()["error"] == "headers_too_large"
    # An insane request id is replaced, and the valid request goes through.
    assert huge_id.status_code == 202
    assert len(huge_id.headers["x-request-id"]) == 32
    assert await topic_size(topics.main) == 1
