"""Real clients nobody here wrote: the OpenTelemetry Python SDK's OTLPLogExporter, over
HTTP/protobuf and over gRPC, configured only through the standard OTEL_EXPORTER_OTLP_*
variables, against a gateway process; plus a hand-written OTLP/JSON request.

Each test reads the records back from its own Kafka topic and checks the mapped fields.
"""

from __future__ import annotations

import gzip
import logging
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from tests.conftest import StartService, Topics
from tests.integration.ingest.conftest import Keys, read_topic
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.fixture
def gateway_process(service_process: StartService, topics: Topics) -> ServiceProcess:
    return service_process("ingest", {**topics.env(), "LOGRIVER_OTEL_ENABLED": "false"})


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], None]:
    """Configure the exporters as a user would: environment variables only."""

    def configure(endpoint: str, key: str) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        # The value is URL-encoded, as the spec says: the space after Bearer is %20.
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{key}")

    return configure


@pytest.fixture
def app_logger() -> Iterator[Callable[[LogRecordExporter], tuple[logging.Logger, LoggerProvider]]]:
    """An application's logging, shipped by LoggingHandler + BatchLogRecordProcessor."""
    made: list[tuple[logging.Logger, logging.Handler, LoggerProvider]] = []

    def make(exporter: LogRecordExporter) -> tuple[logging.Logger, LoggerProvider]:
        provider = LoggerProvider(
            resource=Resource.create(
                {
                    "service.name": "payments",
                    "host.name": "pay-7f9c",
                    "deployment.environment.name": "staging",
                    "service.version": "1.4.2",
                }
            )
        )
        provider.add_log_record_processor(
            BatchLogRecordProcessor(exporter, schedule_delay_millis=100)
        )
        logger = logging.getLogger(f"payments.api.{uuid.uuid4().hex[:6]}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        with warnings.catch_warnings():
            # Deprecated in SDK 1.39 in favour of opentelemetry-instrumentation-logging's
            # handler (not installed); still what most applications use.
            warnings.simplefilter("ignore", DeprecationWarning)
            handler = LoggingHandler(logger_provider=provider)
        logger.addHandler(handler)
        made.append((logger, handler, provider))
        return logger, provider

    yield make
    for logger, handler, provider in made:
        logger.removeHandler(handler)
        provider.shutdown()


def emit(logger: logging.Logger) -> tuple[str, str]:
    """Three records: a warning with attributes, an error in a span, a line with a secret."""
    tracer = TracerProvider().get_tracer("app")
    logger.warning("card declined", extra={"order.id": 1042, "amount": 12.5, "retry": False})
    with tracer.start_as_current_span("charge") as span:
        ctx = span.get_span_context()
        logger.error("gateway timeout after %d ms", 3000)
    logger.info("login ok password=hunter2 for bob@example.com")
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def check_events(records: list[Any], trace_id: str, span_id: str) -> None:
    events = {e["message"]: e for e in (orjson.loads(r.value) for r in records)}
    assert len(events) == 3, events
    warning = events["card declined"]
    assert warning["service"] == "payments"
    assert warning["level"] == "WARNING"
    assert warning["host"] == "pay-7f9c"
    assert warning["env"] == "staging"
    assert warning["metadata"]["order_id"] == 1042
    assert warning["metadata"]["amount"] == 12.5
    assert warning["metadata"]["retry"] is False
    assert warning["metadata"]["resource"]["service_version"] == "1.4.2"
    assert warning["metadata"]["scope"]["name"].startswith("payments.api.")
    assert "trace_id" not in warning
    error = events["gateway timeout after 3000 ms"]
    assert error["level"] == "ERROR"
    assert (error["trace_id"], error["span_id"]) == (trace_id, span_id)
    # The same redaction as the JSON API.
    redacted = next(m for m in events if m.startswith("login ok"))
    assert "hunter2" not in redacted
    assert "bob@example.com" not in redacted
    assert all(uuid.UUID(e["id"]).version == 8 for e in events.values())
    # Keyed by service, like every event.
    assert {r.key for r in records} == {b"payments"}


async def test_sdk_over_http_protobuf_with_gzip(
    gateway_process: ServiceProcess,
    topics: Topics,
    keys: Keys,
    otel_env: Callable[[str, str], None],
    app_logger: Callable[[LogRecordExporter], tuple[logging.Logger, LoggerProvider]],
) -> None:
    otel_env(gateway_process.url, keys.ingest)
    exporter = HttpLogExporter(compression=Compression.Gzip)
    assert exporter._endpoint == f"{gateway_process.url}/v1/logs"  # derived from the env var
    logger, provider = app_logger(exporter)
    trace_id, span_id = emit(logger)
    assert provider.force_flush(10_000)
    check_events(await read_topic(topics.main, expect=3), trace_id, span_id)


async def test_sdk_over_grpc(
    gateway_process: ServiceProcess,
    topics: Topics,
    keys: Keys,
    otel_env: Callable[[str, str], None],
    app_logger: Callable[[LogRecordExporter], tuple[logging.Logger, LoggerProvider]],
) -> None:
    otel_env(f"http://127.0.0.1:{gateway_process.grpc_port}", keys.ingest)
    logger, provider = app_logger(GrpcLogExporter())  # insecure: the endpoint says http
    trace_id, span_id = emit(logger)
    assert provider.force_flush(10_000)
    check_events(await read_topic(topics.main, expect=3), trace_id, span_id)


async def test_sdk_exports_with_a_bad_key_are_refused_and_nothing_is_published(
    gateway_process: ServiceProcess,
    topics: Topics,
    keys: Keys,
    otel_env: Callable[[str, str], None],
    app_logger: Callable[[LogRecordExporter], tuple[logging.Logger, LoggerProvider]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    for endpoint, exporter_class in (
        (gateway_process.url, HttpLogExporter),
        (f"http://127.0.0.1:{gateway_process.grpc_port}", GrpcLogExporter),
    ):
        otel_env(endpoint, keys.read_only)  # a valid key without the ingest scope
        exporter: LogRecordExporter = exporter_class()
        logger, provider = app_logger(exporter)
        logger.error("should not arrive")
        caplog.clear()
        assert provider.force_flush(10_000)
        # The SDK reports the refusal (401/403 are not retried).
        assert any(
            "403" in r.getMessage() or "PERMISSION_DENIED" in r.getMessage() for r in caplog.records
        ), [r.getMessage() for r in caplog.records]
    # One good JSON event marks the end: it is the only record in the topic.
    async with httpx.AsyncClient(base_url=gateway_process.url) as http:
        resp = await http.post(
            "/v1/logs",
            json={"service": "marker", "message": "end"},
            headers={"Authorization": f"Bearer {keys.ingest}"},
        )
        assert resp.status_code == 202, resp.text
    records = await read_topic(topics.main, expect=1)
    assert [orjson.loads(r.value)["message"] for r in records] == ["end"]


async def test_hand_written_otlp_json_with_traceparent(
    gateway_process: ServiceProcess, topics: Topics, keys: Keys
) -> None:
    now = time.time_ns()
    body = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "cron"}},
                        {"key": "deployment.environment", "value": {"stringValue": "prod"}},
                    ]
                },
                "scopeLogs": [
                    {
                        "scope": {"name": "nightly", "version": "2"},
                        "logRecords": [
                            {
                                "timeUnixNano": str(now - 2 * 10**9),
                                "severityNumber": 13,
                                "severityText": "WARN",
                                "body": {"stringValue": "disk 91% full"},
                                "attributes": [
                                    {"key": "disk.path", "value": {"stringValue": "/var"}},
                                    {"key": "pct", "value": {"intValue": "91"}},
                                ],
                            },
                            {
                                "observedTimeUnixNano": str(now - 10**9),
                                "body": {
                                    "kvlistValue": {
                                        "values": [{"key": "job", "value": {"stringValue": "x"}}]
                                    }
                                },
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                            },
                        ],
                    }
                ],
            }
        ]
    }
    async with httpx.AsyncClient(base_url=gateway_process.url) as http:
        resp = await http.post(
            "/v1/logs",
            content=gzip.compress(orjson.dumps(body)),
            headers={
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "Authorization": f"Bearer {keys.ingest}",
                "traceparent": f"00-{TRACE}-{SPAN}-01",
            },
        )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {}  # everything accepted: no partialSuccess
    events = {
        e["message"]: e
        for e in (orjson.loads(r.value) for r in await read_topic(topics.main, expect=2))
    }
    assert len(events) == 2
    first = events["disk 91% full"]
    assert first["service"] == "cron"
    assert first["level"] == "WARNING"
    assert first["env"] == "prod"
    assert first["metadata"]["disk_path"] == "/var"
    assert first["metadata"]["pct"] == 91
    assert first["metadata"]["scope"] == {"name": "nightly", "version": "2"}
    # No ids of its own: the request's traceparent gives them.
    assert (first["trace_id"], first["span_id"]) == (TRACE, SPAN)
    second = events['{"job":"x"}']
    assert second["metadata"]["body"] == {"job": "x"}
    assert second["level"] == "INFO"
    # Its own ids win over the request's.
    assert second["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert second["span_id"] == "eee19b7ec3c1b174"
    assert second["timestamp"] > first["timestamp"]  # observed time, as the fallback
