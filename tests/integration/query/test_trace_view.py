"""``GET /v1/traces/{id}/view``: spans from (real and fake) Jaeger merged with the trace's logs.

The real Jaeger of the local stack gets spans exported over OTLP with chosen times;
a fake Jaeger (a tiny HTTP server in this process) answers what a broken or hostile
Jaeger could: every such answer is a 503 in the one error shape, never a 500.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context
from pymongo import AsyncMongoClient, WriteConcern

from logriver_common.documents import event_to_document
from logriver_common.event import Level, LogEvent
from logriver_common.indexes import ensure_log_indexes
from tests.integration.query.conftest import QueryApp, query_settings, start_query_app
from tests.stack import STACK, eventually, wait_for_jaeger

pytestmark = [pytest.mark.integration]


class FakeJaeger:
    """Answers ``/api/traces/<id>`` with whatever a test sets: (status, body, delay)."""

    def __init__(self) -> None:
        self.answer: tuple[int, bytes, float] = (404, b'{"data":null}', 0.0)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body, delay = fake.answer
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # The query service may have given up on a slow answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_jaeger() -> Iterator[FakeJaeger]:
    fake = FakeJaeger()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="module")
async def database(stack: None) -> AsyncIterator[str]:
    name = f"test_trace_view_{uuid.uuid4().hex[:10]}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
    try:
        await ensure_log_indexes(client[name]["logs"])
        yield name
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture(scope="module")
async def query(database: str) -> AsyncIterator[QueryApp]:
    async for running in start_query_app(query_settings(database)):
        yield running


async def store_logs(query: QueryApp, events: list[LogEvent]) -> None:
    logs = query.app.state.query.collection.with_options(write_concern=WriteConcern(w="majority"))
    await logs.insert_many([event_to_document(event, None) for event in events])


def log_event(trace_id: str, at: datetime, message: str, level: str = "INFO") -> LogEvent:
    return LogEvent(
        timestamp=at, service="checkout", level=Level(level), message=message, trace_id=trace_id
    )


async def view(query: QueryApp, trace_id: str, **params: str) -> httpx.Response:
    return await query.http.get(
        f"/v1/traces/{trace_id}/view", params={"consistent": "true", **params}
    )


def export_spans(trace_start: datetime) -> str:
    """A root span (0-100 ms) with a producer child (60-80 ms); returns the trace id."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "trace-view-test"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=STACK.otlp_grpc, insecure=True))
    )
    tracer = provider.get_tracer("tests")
    ns = int(trace_start.timestamp() * 1_000_000) * 1_000
    root = tracer.start_span("POST /v1/logs", kind=SpanKind.SERVER, start_time=ns)
    child = tracer.start_span(
        "send logs.v1",
        context=set_span_in_context(root),
        kind=SpanKind.PRODUCER,
        start_time=ns + 60_000_000,
        attributes={"messaging.system": "kafka", "messaging.destination.name": "logs.v1"},
    )
    child.end(end_time=ns + 80_000_000)
    root.end(end_time=ns + 100_000_000)
    trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    return trace_id


async def test_spans_and_logs_merge_in_time_order(query: QueryApp) -> None:
    await wait_for_jaeger()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    trace_id = export_spans(start)
    await store_logs(
        query,
        [
            log_event(trace_id, start + timedelta(milliseconds=50), "reserving stock"),
            log_event(trace_id, start + timedelta(milliseconds=90), "payment failed", "ERROR"),
        ],
    )

    async def both_spans() -> dict[str, Any] | None:
        resp = await view(query, trace_id.upper())
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body if len(body["spans"]) == 2 else None

    body = await eventually(both_spans, within=30, what="both spans in the trace view")
    assert body["trace_id"] == trace_id
    root, child = body["spans"]
    assert (root["name"], root["kind"], root["depth"]) == ("POST /v1/logs", "server", 0)
    assert (child["name"], child["kind"], child["depth"]) == ("send logs.v1", "producer", 1)
    assert child["parent_span_id"] == root["span_id"]
    assert child["duration_us"] == 20_000
    assert child["service"] == "trace-view-test"
    assert child["attributes"]["messaging.destination.name"] == "logs.v1"
    # Root (0 ms), log (50 ms), producer span (60 ms), log (90 ms).
    order = [item.get("span_id") or item.get("id") for item in body["timeline"]]
    events = {event["message"]: event["id"] for event in body["events"]}
    assert order == [
        root["span_id"],
        events["reserving stock"],
        child["span_id"],
        events["payment failed"],
    ]
    assert body["jaeger_url"].endswith(f"/trace/{trace_id}")
    assert not body["spans_truncated"]
    assert not body["events_truncated"]


async def test_a_trace_jaeger_does_not_know_shows_its_logs(
    query: QueryApp, fake_jaeger: FakeJaeger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGRIVER_QUERY_JAEGER_QUERY_URL", fake_jaeger.url)
    trace_id = secrets.token_hex(16)
    await store_logs(query, [log_event(trace_id, datetime.now(UTC), "unsampled")])
    for status, body in [
        (404, b'{"data":null,"errors":[{"code":404,"msg":"trace not found"}]}'),
        (200, b'{"data":[]}'),
        (200, b'{"data":null}'),
    ]:
        fake_jaeger.answer = (status, body, 0.0)
        resp = await view(query, trace_id)
        assert resp.status_code == 200, resp.text
        assert resp.json()["spans"] == []
        assert [e["message"] for e in resp.json()["events"]] == ["unsampled"]


async def test_jaeger_down_is_503_in_the_error_shape(
    query: QueryApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A port nothing listens on (bound and closed at once).
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as server:
        port = server.server_address[1]
    monkeypatch.setenv("LOGRIVER_QUERY_JAEGER_QUERY_URL", f"http://127.0.0.1:{port}")
    resp = await view(query, secrets.token_hex(16))
    assert resp.status_code == 503
    body = resp.json()
    assert body["error"] == "jaeger_unavailable"
    assert set(body) == {"error", "detail", "request_id"}
    assert resp.headers["Retry-After"]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"<html>jaeger placeholder</html>"),
        (200, b"[1, 2, 3]"),
        (200, b'{"data": "nope"}'),
        (200, b'{"data": [42]}'),
        (200, b"\xff\xfe\x00garbage"),
        (500, b'{"errors":[{"code":500,"msg":"storage"}]}'),
        (302, b""),
        (200, b"[" * 100_000),
    ],
)
async def test_a_hostile_jaeger_answer_is_503(
    query: QueryApp,
    fake_jaeger: FakeJaeger,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    body: bytes,
) -> None:
    monkeypatch.setenv("LOGRIVER_QUERY_JAEGER_QUERY_URL", fake_jaeger.url)
    fake_jaeger.answer = (status, body, 0.0)
    resp = await view(query, secrets.token_hex(16))
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"] == "jaeger_unavailable"


async def test_a_slow_or_huge_jaeger_answer_is_cut_off(
    query: QueryApp, fake_jaeger: FakeJaeger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGRIVER_QUERY_JAEGER_QUERY_URL", fake_jaeger.url)
    monkeypatch.setenv("LOGRIVER_QUERY_JAEGER_TIMEOUT_S", "0.3")
    fake_jaeger.answer = (200, b'{"data":[]}', 1.5)
    started = time.monotonic()
    resp = await view(query, secrets.token_hex(16))
    assert resp.status_code == 503
    assert time.monotonic() - started < 1.4
    monkeypatch.setenv("LOGRIVER_QUERY_JAEGER_MAX_BYTES", "4096")
    huge = orjson.dumps({"data": [{"spans": [{"spanID": "a" * 16, "tags": ["x" * 10_000]}]}]})
    fake_jaeger.answer = (200, huge, 0.0)
    resp = await view(query, secrets.token_hex(16))
    assert resp.status_code == 503
    assert "larger than 4096 bytes" in resp.json()["detail"]


async def test_malformed_spans_are_left_out_not_fatal(
    query: QueryApp, fake_jaeger: FakeJaeger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGRIVER_QUERY_JAEGER_QUERY_URL", fake_jaeger.url)
    monkeypatch.setenv("LOGRIVER_QUERY_JAEGER_MAX_SPANS", "3")
    now_us = int(time.time() * 1_000_000)
    good = {
        "spanID": "b" * 16,
        "operationName": "<script>alert(1)</script>",
        "startTime": now_us,
        "duration": 5,
        "processID": "p1",
        "references": [{"refType": "CHILD_OF", "spanID": "b" * 16}],  # a cycle onto itself
        "tags": [{"key": "span.kind", "value": "client"}, {"key": "deep", "value": {"a": [1]}}],
    }
    spans: list[Any] = [
        good,
        None,
        "span",
        {"spanID": 7, "startTime": now_us},
        {"spanID": "c" * 16, "startTime": "yesterday"},
        {"spanID": "d" * 16, "startTime": 10**18},
        {"spanID": "e" * 16, "startTime": True},
        {"spanID": "f" * 16, "startTime": now_us + 1, "duration": -4, "tags": "x"},
        *({"spanID": f"{i:016x}", "startTime": now_us + 10 + i} for i in range(10)),
    ]
    payload = {"data": [{"spans": spans, "processes": {"p1": {"serviceName": "api"}, "p2": 3}}]}
    fake_jaeger.answer = (200, orjson.dumps(payload), 0.0)
    resp = await view(query, secrets.token_hex(16))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["spans_truncated"] is True
    assert [s["span_id"] for s in body["spans"]] == ["b" * 16, "f" * 16, f"{0:016x}"]
    first = body["spans"][0]
    assert first["name"] == "<script>alert(1)</script>"  # data; the page renders text only
    assert (first["service"], first["kind"], first["depth"]) == ("api", "client", 0)
    assert first["attributes"]["deep"] == "{'a': [1]}"
    assert body["spans"][1]["duration_us"] == 0


@pytest.mark.parametrize(
    "trace_id",
    [
        "xyz",
        "0" * 31,
        "0" * 33,
        "0" * 32,
        "g" * 32,
        "%00" * 11,
        "é" * 32,
        "a" * 10_000,
        "' OR 1=1 --" + "a" * 21,
        '{"$gt":""}' + "a" * 22,
    ],
)
async def test_bad_trace_ids_are_400(query: QueryApp, trace_id: str) -> None:
    resp = await query.http.get(f"/v1/traces/{trace_id}/view")
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "bad_request"


async def test_unknown_parameters_and_missing_keys_are_refused(query: QueryApp) -> None:
    trace_id = secrets.token_hex(16)
    resp = await query.http.get(f"/v1/traces/{trace_id}/view", params={"limit": "5"})
    assert resp.status_code == 400
    resp = await query.http.get(
        f"/v1/traces/{trace_id}/view", params=[("consistent", "true"), ("consistent", "false")]
    )
    assert resp.status_code == 400
    resp = await query.http.get(f"/v1/traces/{trace_id}/view", headers={"X-API-Key": ""})
    assert resp.status_code == 401
    assert resp.json()["error"] == "unauthorized"
