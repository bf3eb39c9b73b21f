"""Hostile OTLP over HTTP and gRPC: a 400/413/415 (INVALID_ARGUMENT, ...) or a partial
success, never a 5xx or an UNKNOWN/INTERNAL status, and only valid events reach Kafka."""

from __future__ import annotations

import gzip
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc  # type: ignore[import-untyped]
import httpx
import orjson
import pytest
from google.rpc.error_details_pb2 import RetryInfo  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from tests.conftest import Topics
from tests.integration.ingest.conftest import Keys, OpenGateway, read_topic, topic_size
from tests.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

PROTOBUF = {"Content-Type": "application/x-protobuf"}
METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def now_ns() -> int:
    return time.time_ns()


def request(*records: LogRecord, service: str = "hostile") -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(
                    attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))]
                ),
                scope_logs=[ScopeLogs(log_records=list(records))],
            )
        ]
    )


def line(text: str, **fields: Any) -> LogRecord:
    return LogRecord(time_unix_nano=now_ns(), body=AnyValue(string_value=text), **fields)


def body_of(*records: LogRecord) -> bytes:
    data: bytes = request(*records).SerializeToString()
    return data


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2]) + _varint(len(payload)) + payload


def deeply_nested(levels: int) -> bytes:
    """A request whose record body nests arrays ``levels`` deep, encoded by hand (the
    protobuf library refuses to even build such a message)."""
    value = _field(1, b"leaf")  # AnyValue.string_value
    for _ in range(levels):
        value = _field(5, _field(1, value))  # AnyValue.array_value → ArrayValue.values
    record = _field(5, value)  # LogRecord.body
    return _field(1, _field(2, _field(2, record)))  # request → resource_logs → scope_logs


def assert_error_shape(resp: httpx.Response, status: int, error: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == error, body
    assert set(body) == {"error", "detail", "request_id"}


def otlp_response(resp: httpx.Response) -> ExportLogsServiceResponse:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/x-protobuf"
    answer: ExportLogsServiceResponse = ExportLogsServiceResponse.FromString(resp.content)
    return answer


@pytest.mark.parametrize(
    ("name", "kwargs", "status", "error"),
    [
        (
            "garbage",
            {"content": b"\xff\xfe not protobuf", "headers": PROTOBUF},
            400,
            "malformed_body",
        ),
        (
            "truncated",
            {"content": body_of(line("x"))[:-3], "headers": PROTOBUF},
            400,
            "malformed_body",
        ),
        (
            "not gzip",
            {"content": body_of(line("x")), "headers": {**PROTOBUF, "Content-Encoding": "gzip"}},
            400,
            "malformed_body",
        ),
        (
            "brotli",
            {"content": b"x", "headers": {**PROTOBUF, "Content-Encoding": "br"}},
            415,
            "unsupported_media_type",
        ),
        (
            "text",
            {"content": b"x", "headers": {"Content-Type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ("too deep", {"content": deeply_nested(200), "headers": PROTOBUF}, 400, "malformed_body"),
        (
            "invalid utf-8",
            {
                "content": body_of(line("@@@@")).replace(b"@@@@", b"\xc0\x80\xff\xfe"),
                "headers": PROTOBUF,
            },
            400,
            "malformed_body",
        ),
        (
            "huge",
            {"content": b"\x0a" * (6 * 1024 * 1024), "headers": PROTOBUF},
            413,
            "payload_too_large",
        ),
        (
            "gzip bomb",
            {
                "content": gzip.compress(b"\x00" * (64 * 1024 * 1024)),
                "headers": {**PROTOBUF, "Content-Encoding": "gzip"},
            },
            413,
            "payload_too_large",
        ),
        (
            "json resourceLogs of the wrong type",
            {"json": {"resourceLogs": {"no": "list"}}},
            400,
            "malformed_body",
        ),
        (
            "json ids not hex",
            {"json": {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "xyz"}]}]}]}},
            400,
            "malformed_body",
        ),
    ],
)
async def test_undecodable_otlp_is_refused_and_nothing_published(
    gateway: OpenGateway,
    topics: Topics,
    name: str,
    kwargs: dict[str, Any],
    status: int,
    error: str,
) -> None:
    async with gateway() as http:
        assert_error_shape(await http.post("/v1/logs", **kwargs), status, error)
        # The gateway is fine afterwards.
        assert (
            otlp_response(
                await http.post("/v1/logs", content=body_of(line("after")), headers=PROTOBUF)
            )
            == ExportLogsServiceResponse()
        )
    assert await topic_size(topics.main) == 1


async def test_partial_success_names_the_rejected_records(
    gateway: OpenGateway, topics: Topics
) -> None:
    too_long = line("m" * 40_000)
    future = LogRecord(time_unix_nano=2**64 - 1, body=AnyValue(string_value="future"))
    nul = line("a\x00b")
    good = line("good")
    async with gateway() as http:
        resp = await http.post(
            "/v1/logs", content=body_of(too_long, good, future, nul), headers=PROTOBUF
        )
    answer = otlp_response(resp)
    assert answer.partial_success.rejected_log_records == 3
    message = answer.partial_success.error_message
    assert message.startswith("3 log records rejected: record 0: message: ")
    assert "record 2: timestamp:" in message
    assert "record 3: message:" in message
    records = await read_topic(topics.main, expect=1)
    assert [orjson.loads(r.value)["message"] for r in records] == ["good"]


async def test_ten_thousand_attributes_and_bad_ids_are_accepted_with_warnings(
    gateway: OpenGateway, topics: Topics
) -> None:
    many = line(
        "wide",
        attributes=[KeyValue(key=f"k.{n}", value=AnyValue(int_value=n)) for n in range(10_000)],
    )
    bad_ids = line("bad ids", trace_id=b"\x01" * 7, span_id=b"\x02" * 3)
    nested = AnyValue(string_value="x")
    for _ in range(5):  # containers at depths 2..6: the fifth is past the limit of 5
        nested = AnyValue(array_value=ArrayValue(values=[nested]))
    deep = line("deep", attributes=[KeyValue(key="d", value=nested)])
    async with gateway() as http:
        answer = otlp_response(
            await http.post(
                "/v1/logs",
                content=gzip.compress(body_of(many, bad_ids, deep)),
                headers={**PROTOBUF, "Content-Encoding": "gzip"},
            )
        )
    assert answer.partial_success.rejected_log_records == 0
    message = answer.partial_success.error_message
    assert "1 log records accepted with attributes dropped" in message
    assert "1 log records accepted with trace_id/span_id of a wrong length ignored" in message
    assert "1 log records accepted with values nested past the depth limit" in message
    events = {
        e["message"]: e
        for e in (orjson.loads(r.value) for r in await read_topic(topics.main, expect=3))
    }
    wide = events["wide"]["metadata"]
    assert len(wide) == 100  # the key limit, the count included
    assert wide["dropped_attributes_count"] == 10_000 - (len(wide) - 1)
    assert "trace_id" not in events["bad ids"]
    assert orjson.loads(events["deep"]["metadata"]["d"][0][0][0][0]) == ["x"]  # JSON text


async def test_batch_rate_and_overload_refusals(gateway: OpenGateway, topics: Topics) -> None:
    async with gateway(
        max_batch_events=5, rate_limit_burst_events=5, rate_limit_events_per_s=0.01
    ) as http:
        assert_error_shape(
            await http.post(
                "/v1/logs", content=body_of(*(line("x") for _ in range(6))), headers=PROTOBUF
            ),
            413,
            "batch_too_large",
        )
        otlp_response(
            await http.post(
                "/v1/logs", content=body_of(*(line("x") for _ in range(4))), headers=PROTOBUF
            )
        )
        resp = await http.post("/v1/logs", content=body_of(line("a"), line("b")), headers=PROTOBUF)
        assert_error_shape(resp, 429, "rate_limited")
        assert int(resp.headers["Retry-After"]) >= 1
    async with gateway(max_in_flight_events=1) as http:
        resp = await http.post("/v1/logs", content=body_of(line("a"), line("b")), headers=PROTOBUF)
        assert_error_shape(resp, 503, "unavailable")
        assert resp.headers["Retry-After"]
        # An empty export is a valid request with nothing to do.
        assert otlp_response(await http.post("/v1/logs", content=b"", headers=PROTOBUF)) == (
            ExportLogsServiceResponse()
        )
        resp = await http.post(
            "/v1/logs", content=body_of(line("x")), headers={**PROTOBUF, "Authorization": ""}
        )
        assert_error_shape(resp, 401, "unauthorized")
    assert await topic_size(topics.main) == 4


@pytest.fixture
async def grpc_gateway(gateway: OpenGateway) -> AsyncIterator[tuple[int, httpx.AsyncClient]]:
    port = free_port()
    async with gateway(grpc_port=port, max_in_flight_events=3) as http:
        yield port, http


async def call(port: int, body: bytes, metadata: tuple[tuple[str, str], ...]) -> tuple[Any, Any]:
    """(status code, response or trailers) of one raw Export call."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(METHOD)
        try:
            raw = await export(body, metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), (exc.details(), dict(exc.trailing_metadata() or ()))
        return grpc.StatusCode.OK, ExportLogsServiceResponse.FromString(raw)


async def test_grpc_refusals_have_the_otlp_status_codes(
    grpc_gateway: tuple[int, httpx.AsyncClient], keys: Keys, topics: Topics
) -> None:
    port, _ = grpc_gateway
    auth = (("authorization", f"Bearer {keys.ingest}"),)
    code, _ = await call(port, body_of(line("x")), ())
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _ = await call(port, body_of(line("x")), (("x-api-key", "lr_nope_" + "x" * 500),))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _ = await call(port, body_of(line("x")), (("x-api-key", keys.read_only),))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    for hostile in (
        b"\xff\xfe garbage",
        deeply_nested(200),
        body_of(line("@@")).replace(b"@@", b"\xff\xff"),
    ):
        code, (details, _) = await call(port, hostile, auth)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    code, _ = await call(port, b"\x0a" * (21 * 1024 * 1024), auth)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED  # gRPC's own message size limit
    # Overloaded (more than max_in_flight_events at once): UNAVAILABLE with a retry delay.
    code, (details, trailers) = await call(port, body_of(*(line("x") for _ in range(4))), auth)
    assert code == grpc.StatusCode.UNAVAILABLE, details
    info = RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    assert info.retry_delay.seconds >= 1
    # Partial success over gRPC, with the key in x-api-key.
    code, answer = await call(
        port, body_of(line("ok"), line("m" * 40_000)), (("x-api-key", keys.ingest),)
    )
    assert code == grpc.StatusCode.OK
    assert answer.partial_success.rejected_log_records == 1
    records = await read_topic(topics.main, expect=1)
    assert [orjson.loads(r.value)["message"] for r in records] == ["ok"]


async def test_grpc_rate_limit_is_resource_exhausted_with_retry_info(
    gateway: OpenGateway, keys: Keys
) -> None:
    port = free_port()
    async with gateway(
        grpc_port=port, max_batch_events=5, rate_limit_burst_events=5, rate_limit_events_per_s=0.01
    ):
        auth = (("authorization", f"Bearer {keys.ingest}"),)
        code, _ = await call(port, body_of(*(line("x") for _ in range(4))), auth)
        assert code == grpc.StatusCode.OK
        code, (_, trailers) = await call(port, body_of(line("a"), line("b")), auth)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]).retry_delay.seconds >= 1
        code, (details, _) = await call(port, body_of(*(line("x") for _ in range(6))), auth)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most 5" in details


async def test_a_taken_grpc_port_fails_start_up(gateway: OpenGateway) -> None:
    port = free_port()
    async with gateway(grpc_port=port):
        with pytest.raises(RuntimeError, match="LOGRIVER_INGEST_GRPC_PORT"):
            async with gateway(grpc_port=port):
                pass
