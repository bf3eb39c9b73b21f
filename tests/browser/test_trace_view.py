"""The console's trace page in a real browser: the span waterfall with the logs interleaved.

Spans of a gateway → Kafka → writer/stream/alerter trace are exported to the stack's
Jaeger with chosen times; the trace's logs are stored in a private database. The page
gets both from the query service (``/v1/traces/{id}/view``), never from Jaeger itself.
Screenshots: test-output/trace-view*.png (copied to docs/img for docs/tracing.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Span, SpanKind, Tracer, set_span_in_context
from playwright.async_api import Browser, expect
from pymongo import AsyncMongoClient, WriteConcern

from logriver_common.documents import event_to_document
from logriver_common.event import Level, LogEvent
from logriver_common.indexes import ensure_log_indexes
from tests.conftest import StartService
from tests.processes import OUTPUT_DIR
from tests.stack import STACK, eventually, wait_for_jaeger

pytestmark = [pytest.mark.integration]
HOSTILE = '<img src=x onerror="window.__pwned=1">'
JAEGER_UI = "http://jaeger.example.test"


def _kafka(operation: str, **extra: Any) -> dict[str, Any]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.destination.name": "logs.v1",
        "messaging.kafka.message.key": "checkout",
        **extra,
    }


def export_pipeline_trace(start: datetime) -> str:
    """The spans one traced request leaves across the services; returns the trace id."""
    providers: dict[str, TracerProvider] = {}

    def tracer(service: str) -> Tracer:
        if service not in providers:
            provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
            exporter = OTLPSpanExporter(endpoint=STACK.otlp_grpc, insecure=True)
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            providers[service] = provider
        return providers[service].get_tracer("tests")

    t0 = int(start.timestamp() * 1_000_000) * 1_000
    ms = 1_000_000

    def span(
        service: str,
        name: str,
        parent: Span | None,
        kind: SpanKind,
        at: float,
        end: float,
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        context = set_span_in_context(parent) if parent is not None else None
        started = tracer(service).start_span(
            name, context=context, kind=kind, start_time=t0 + int(at * ms), attributes=attributes
        )
        started.end(end_time=t0 + int(end * ms))
        return started

    request = span(
        "logriver-ingest",
        "POST /v1/logs",
        None,
        SpanKind.SERVER,
        0,
        42,
        {"http.route": "/v1/logs", "http.status_code": 202},
    )
    send = span(
        "logriver-ingest",
        "send logs.v1",
        request,
        SpanKind.PRODUCER,
        6,
        38,
        _kafka("send", **{"messaging.batch.message_count": 3}),
    )
    span(
        "logriver-stream",
        "logriver.stream deliver",
        send,
        SpanKind.CONSUMER,
        47,
        48,
        _kafka("process", **{"messaging.kafka.offset": 1041, "logriver.subscribers": 2}),
    )
    span(
        "logriver-alerter",
        "logriver.alerter count",
        send,
        SpanKind.CONSUMER,
        51,
        52,
        _kafka("process", **{"messaging.kafka.offset": 1041}),
    )
    span(
        "logriver-writer",
        "logriver.writer.store",
        send,
        SpanKind.CONSUMER,
        58,
        96,
        {"messaging.system": "kafka", "messaging.operation.type": "process", "logriver.events": 3},
    )
    trace_id = format(request.get_span_context().trace_id, "032x")
    for provider in providers.values():
        provider.shutdown()
    return trace_id


async def store_logs(database: str, trace_id: str, start: datetime) -> None:
    logs = [
        (2, Level.INFO, "checkout started for cart 8812"),
        (21, Level.WARNING, "payment provider slow: 180 ms"),
        (30, Level.ERROR, "payment declined: card expired"),
        (70, Level.INFO, HOSTILE),
    ]
    docs = [
        event_to_document(
            LogEvent(
                timestamp=start + timedelta(milliseconds=at),
                service="checkout",
                level=level,
                message=message,
                trace_id=trace_id,
                metadata={"cart": "8812"},
            ),
            None,
        )
        for at, level, message in logs
    ]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
    try:
        collection = client[database]["logs"]
        await ensure_log_indexes(collection)
        await collection.with_options(write_concern=WriteConcern(w=3)).insert_many(docs)
    finally:
        await client.close()


async def five_spans(trace_id: str) -> bool:
    async with httpx.AsyncClient(base_url=STACK.jaeger_query, timeout=5) as http:
        resp = await http.get(f"/api/traces/{trace_id}")
    data: list[dict[str, Any]] = (resp.json().get("data") or []) if resp.status_code == 200 else []
    return bool(data) and len(data[0]["spans"]) == 5


async def test_trace_page_draws_spans_and_logs_in_time_order(
    browser: Browser, service_process: StartService, mongo_database: str
) -> None:
    await wait_for_jaeger()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    trace_id = export_pipeline_trace(start)
    await store_logs(mongo_database, trace_id, start)
    await eventually(lambda: five_spans(trace_id), within=30, what="the trace in Jaeger")
    query = service_process(
        "query",
        {
            "LOGRIVER_MONGO_DATABASE": mongo_database,
            "LOGRIVER_OTEL_ENABLED": "false",
            "LOGRIVER_QUERY_JAEGER_UI_URL": JAEGER_UI,
        },
    )
    page = await browser.new_page(viewport={"width": 1280, "height": 640})
    await page.goto(f"{query.url}/trace.html?trace_id={trace_id}")
    await expect(page.locator("#waterfall .wf-row.span")).to_have_count(5)
    await expect(page.locator("#waterfall .wf-row.log")).to_have_count(4)
    await expect(page.locator("#summary")).to_contain_text("5 spans")
    await expect(page.locator("#summary")).to_contain_text("4 logs")

    # One time order: spans by start, logs at their time, interleaved.
    labels = await page.locator("#waterfall .wf-row:not(.axis) .wf-label").all_inner_texts()
    order = [label.split("\n")[0] for label in labels]
    names = [
        "POST /v1/logs",
        "checkout started",
        "send logs.v1",
        "payment provider slow",
        "payment declined",
        "logriver.stream deliver",
        "logriver.alerter count",
        "logriver.writer.store",
        "onerror",
    ]
    assert len(order) == len(names), order
    for label, name in zip(order, names, strict=True):
        assert name in label, (label, name)

    # Children are indented under their parent; kinds colour the bars.
    assert await page.locator(".wf-bar.kind-PRODUCER").count() == 1
    assert await page.locator(".wf-bar.kind-CONSUMER").count() == 3
    # A log line is text, never markup.
    await expect(page.locator("#waterfall .wf-row.log", has_text="onerror")).to_be_visible()
    assert await page.locator("#waterfall img").count() == 0
    assert await page.evaluate("window.__pwned") is None
    # The Jaeger UI link is there because a UI is configured.
    link = page.locator("#jaeger-link")
    assert await link.get_attribute("href") == f"{JAEGER_UI}/trace/{trace_id}"

    OUTPUT_DIR.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT_DIR / "trace-view.png"))
    # A span's attributes open under it.
    await page.locator("#waterfall .wf-row.span", has_text="send logs.v1").click()
    details = page.locator("#waterfall .wf-details:not(.hidden)")
    await expect(details).to_contain_text('"messaging.operation.type": "send"')
    await expect(details).to_contain_text('"messaging.destination.name": "logs.v1"')
    await page.screenshot(path=str(OUTPUT_DIR / "trace-view-span.png"))

    # A malformed id is refused on the page; an unknown one shows nothing, clearly.
    await page.fill("#trace-id", "not-a-trace")
    await page.click("#trace-form button[type=submit]")
    await expect(page.locator("#status")).to_contain_text("32 hexadecimal digits")
    await expect(page.locator("#waterfall")).to_be_hidden()
    await page.fill("#trace-id", "ab" * 16)
    await page.click("#trace-form button[type=submit]")
    await expect(page.locator("#status")).to_contain_text("Nothing recorded for this trace")
