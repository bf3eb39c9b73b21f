"""Spans exported over OTLP can be fetched back from Jaeger's query API."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from logriver_common.settings import TelemetrySettings
from logriver_common.telemetry import (
    extract_kafka_context,
    inject_kafka_headers,
    setup_tracing,
    span_context_from_headers,
)
from tests.stack import STACK, eventually, wait_for_jaeger

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]


async def _trace(trace_id: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(base_url=STACK.jaeger_query, timeout=5) as http:
        resp = await http.get(f"/api/traces/{trace_id}")
    if resp.status_code != 200:
        return None
    data = resp.json().get("data") or []
    return data[0] if data else None


async def test_span_from_the_shared_setup_reaches_jaeger(unique: str) -> None:
    await wait_for_jaeger()
    provider = setup_tracing(f"test-{unique}", TelemetrySettings(endpoint=STACK.otlp_grpc))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("produce") as span:
        headers = inject_kafka_headers()
        trace_id = format(span.get_span_context().trace_id, "032x")
    # A consumer links its span to the producer's context carried in Kafka headers.
    linked = span_context_from_headers(headers)
    assert linked is not None
    assert format(linked.trace_id, "032x") == trace_id
    with tracer.start_as_current_span("consume", context=extract_kafka_context(headers)):
        pass
    provider.force_flush()
    provider.shutdown()

    found = await eventually(lambda: _trace(trace_id), within=30, what="trace in Jaeger")
    names = {s["operationName"] for s in found["spans"]}
    assert names == {"produce", "consume"}


async def test_a_running_service_exports_its_request_spans() -> None:
    """The ingest service (started by `make up`) continues a trace we start."""
    await wait_for_jaeger()
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    async with httpx.AsyncClient(base_url="http://127.0.0.1:8000", timeout=5) as http:
        try:
            resp = await http.get("/openapi.json", headers={"traceparent": traceparent})
        except httpx.ConnectError:
            pytest.fail("the ingest service is not running: start the stack with `make up`")
    assert resp.status_code == 200
    found = await eventually(lambda: _trace(trace_id), within=30, what="service trace in Jaeger")
    processes = found["processes"]
    assert any(p["serviceName"] == "logriver-ingest" for p in processes.values())
