"""Request spans: named after the route template, looked up once per path; not recorded
when tracing is disabled."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from logriver_common.settings import TelemetrySettings
from logriver_common.telemetry import SpanNames, instrument_app, setup_tracing


def _app() -> tuple[FastAPI, InMemorySpanExporter]:
    app = FastAPI()

    @app.get("/v1/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    @app.post("/v1/items")
    async def add() -> dict[str, str]:
        return {}

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument_app(app, provider)
    return app, exporter


async def test_spans_are_named_after_route_templates_with_names_reused() -> None:
    app, exporter = _app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for _ in range(3):
            assert (await http.get("/v1/items/42")).status_code == 200
        assert (await http.post("/v1/items")).status_code == 200
        assert (await http.get("/v1/items/7")).status_code == 200
    # The stack the app built uses the cache (a changed instrumentation would fail here).
    names = app.middleware_stack.app.default_span_details  # type: ignore[union-attr]
    assert isinstance(names, SpanNames)
    assert len(names._known) == 3  # two paths of one route, and the POST

    spans = [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]
    got = [(s.name, (s.attributes or {}).get("http.route")) for s in spans]
    assert got == [
        *[("GET /v1/items/{item_id}", "/v1/items/{item_id}")] * 3,
        ("POST /v1/items", "/v1/items"),
        ("GET /v1/items/{item_id}", "/v1/items/{item_id}"),
    ]


def test_each_path_is_looked_up_once_callers_get_their_own_attributes_and_it_is_bounded() -> None:
    calls: list[str] = []

    def details(scope: dict[Any, Any]) -> tuple[str, dict[Any, Any]]:
        calls.append(scope["path"])
        return f"GET {scope['path']}", {"http.route": scope["path"]}

    names = SpanNames(details, max_entries=2)
    scope = {"type": "http", "method": "GET", "path": "/a"}
    first = names(scope)
    first[1]["mutated"] = True
    assert names(scope) == ("GET /a", {"http.route": "/a"})
    assert calls == ["/a"]
    assert names({**scope, "method": "POST"})[0] == "GET /a"  # another key: looked up
    assert calls == ["/a", "/a"]
    names({**scope, "path": "/b"})  # a third key: the cache starts again
    assert len(names._known) == 1
    names(scope)
    assert calls == ["/a", "/a", "/b", "/a"]


def test_a_long_path_is_named_but_never_kept() -> None:
    names = SpanNames(lambda scope: ("GET", {}), max_path=256)
    long_path = "/v1/logs/" + "x" * 10_000
    assert names({"type": "http", "method": "GET", "path": long_path}) == ("GET", {})
    assert names._known == {}
    names({"type": "http", "method": "GET", "path": "/v1/logs/" + "x" * 247})  # 256: kept
    assert len(names._known) == 1


def test_disabled_tracing_starts_spans_that_record_nothing_and_keep_the_callers_trace() -> None:
    provider = setup_tracing("test", TelemetrySettings(enabled=False))
    tracer = provider.get_tracer("t")
    caller = SpanContext(0xABC, 0x1, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with tracer.start_as_current_span(
        "request", context=set_span_in_context(NonRecordingSpan(caller))
    ) as span:
        assert not span.is_recording()  # no attributes, no events: nothing would export them
        assert span.get_span_context().trace_id == 0xABC  # logs and Kafka headers still carry it
        assert span.get_span_context().is_valid
