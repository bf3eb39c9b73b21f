"""Decoding OTLP bodies (protobuf, JSON), traceparent, and the gRPC status mapping:
any input is a request or a 400, never another exception."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from google.rpc.error_details_pb2 import RetryInfo  # type: ignore[import-untyped]
from grpc import StatusCode  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from logriver_common.web.errors import ApiError
from logriver_ingest.otlp_export import (
    ExportResult,
    _error_message,
    decode_json,
    decode_protobuf,
    is_otlp_json,
    response_json,
)
from logriver_ingest.otlp_grpc import retry_info, status_for
from logriver_ingest.otlp_mapping import DROPPED_ATTRIBUTES
from logriver_ingest.trace_context import TraceContext, fill_trace_context, parse_traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def otlp_json(**record: Any) -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeLogs": [{"scope": {"name": "s"}, "logRecords": [record]}],
            }
        ]
    }


def test_otlp_json_with_hex_ids_and_string_int64s() -> None:
    message = decode_json(
        otlp_json(
            timeUnixNano="1700000000000000000",
            severityNumber=17,
            body={"stringValue": "x"},
            traceId=TRACE,
            spanId=SPAN,
            attributes=[{"key": "n", "value": {"intValue": "12"}}],
            somethingNew={"ignored": True},  # unknown fields are ignored, as OTLP says
        )
    )
    record = message.resource_logs[0].scope_logs[0].log_records[0]
    assert record.trace_id.hex() == TRACE
    assert record.span_id.hex() == SPAN
    assert record.time_unix_nano == 1_700_000_000_000_000_000
    assert record.attributes[0].value.int_value == 12


def test_otlp_json_in_proto_field_names_is_read_too() -> None:
    body = {
        "resource_logs": [
            {"scope_logs": [{"log_records": [{"trace_id": TRACE, "severity_text": "WARN"}]}]}
        ]
    }
    assert is_otlp_json([body])
    record = decode_json(body).resource_logs[0].scope_logs[0].log_records[0]
    assert record.trace_id.hex() == TRACE
    assert record.severity_text == "WARN"


def test_a_json_event_is_not_otlp() -> None:
    assert not is_otlp_json([{"service": "a", "message": "m"}])
    assert not is_otlp_json([{"resourceLogs": []}, {"resourceLogs": []}])
    assert not is_otlp_json(["resourceLogs"])


@pytest.mark.parametrize(
    "body",
    [
        otlp_json(traceId="zz" * 16),
        otlp_json(spanId="abc"),
        {"resourceLogs": "nope"},
        {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": -1}]}]}]},
        {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": 2**64}]}]}]},
        {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": 1.5}]}]}]},
        {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"severityNumber": {"a": 1}}]}]}]},
        {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"bytesValue": 5}}]}]}]},
        {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": 5}]}]}]},
        {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"attributes": {"a": 1}}]}]}]},
        {"resourceLogs": [None]},
    ],
)
def test_malformed_otlp_json_is_a_400(body: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as caught:
        decode_json(body)
    assert caught.value.status_code == 400
    assert caught.value.error == "malformed_body"


def deep_body(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(depth):
        value = {"arrayValue": {"values": [value]}}
    return otlp_json(body=value)


def test_json_nesting_is_bounded() -> None:
    decode_json(deep_body(20))
    with pytest.raises(ApiError) as caught:
        decode_json(deep_body(5_000))
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xff\xff\xff",
        b"not protobuf at all",
        b"\x0a\xff\xff\xff\xff\x0f",  # a length past the end
    ],
)
def test_garbage_protobuf_is_a_400(body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        decode_protobuf(body)
    assert caught.value.status_code == 400


def test_invalid_utf8_in_a_protobuf_string_is_a_400() -> None:
    valid = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord(severity_text="@@@@")])])
        ]
    ).SerializeToString()
    with pytest.raises(ApiError) as caught:
        decode_protobuf(valid.replace(b"@@@@", b"\xff\xfe\xc0\x80"))
    assert caught.value.status_code == 400


def test_an_empty_protobuf_body_is_an_empty_request() -> None:
    assert not decode_protobuf(b"").resource_logs


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_400(body: bytes) -> None:
    status = 200
    try:
        decode_protobuf(body)
    except ApiError as exc:
        status = exc.status_code
    assert status in (200, 400)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "resourceLogs",
                    "scopeLogs",
                    "logRecords",
                    "body",
                    "attributes",
                    "key",
                    "value",
                    "stringValue",
                    "kvlistValue",
                    "arrayValue",
                    "values",
                    "traceId",
                    "spanId",
                    "timeUnixNano",
                    "severityNumber",
                    "bytesValue",
                    "intValue",
                    "doubleValue",
                    "resource",
                    "scope",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.just("resourceLogs"), json_values, min_size=1))
def test_any_json_decodes_or_400(body: dict[str, Any]) -> None:
    try:
        value = orjson.loads(orjson.dumps(body))
    except orjson.JSONEncodeError:
        return  # hypothesis built something JSON cannot hold (a huge integer): not an input
    status = 200
    try:
        decode_json(value)
    except ApiError as exc:
        status = exc.status_code
    assert status in (200, 400)


def test_responses_carry_partial_success_only_when_there_is_something_to_say() -> None:
    assert ExportResult(3, 0, "").response() == ExportLogsServiceResponse()
    assert response_json(ExportResult(3, 0, "")) == {}
    body = response_json(ExportResult(1, 2, "2 log records rejected"))
    assert body == {
        "partialSuccess": {"rejectedLogRecords": "2", "errorMessage": "2 log records rejected"}
    }
    warned = ExportResult(3, 0, "1 log records accepted with x").response()
    assert warned.partial_success.rejected_log_records == 0
    assert warned.partial_success.error_message


def test_the_error_message_names_a_few_refusals_and_counts_the_rest() -> None:
    errors = [
        {"index": n, "errors": [{"loc": ["message"], "msg": "too long", "type": "value_error"}]}
        for n in range(8)
    ]
    from collections import Counter

    text = _error_message(errors, Counter({DROPPED_ATTRIBUTES: 2}))
    assert text.startswith("8 log records rejected: record 0: message: too long")
    assert "(and 3 more)" in text
    assert f"2 log records accepted with {DROPPED_ATTRIBUTES}" in text


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{TRACE}-{SPAN}-01", TraceContext(TRACE, SPAN)),
        (f"00-{TRACE}-{SPAN}-00", TraceContext(TRACE, SPAN)),
        (f" 00-{TRACE}-{SPAN}-01 ", TraceContext(TRACE, SPAN)),
        (f"01-{TRACE}-{SPAN}-01-future-stuff", TraceContext(TRACE, SPAN)),
        (f"00-{TRACE}-{SPAN}-01-extra", None),  # version 00 has exactly four fields
        (f"ff-{TRACE}-{SPAN}-01", None),
        (f"00-{TRACE.upper()}-{SPAN}-01", None),
        (f"00-{'0' * 32}-{SPAN}-01", None),
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"00-{TRACE[:-1]}-{SPAN}-01", None),
        ("", None),
        (None, None),
        ("garbage", None),
        (f"00-{TRACE}-{SPAN}-01" + "-x" * 1000, None),
    ],
)
def test_traceparent(header: str | None, expected: TraceContext | None) -> None:
    assert parse_traceparent(header) == expected


def test_traceparent_fills_only_events_without_a_trace() -> None:
    own = "a" * 32
    items: list[Any] = [
        {"message": "none"},
        {"message": "null", "trace_id": None},
        {"message": "own", "trace_id": own},
        {"message": "own without span", "trace_id": own, "span_id": None},
        "not an object",
    ]
    fill_trace_context(items, TraceContext(TRACE, SPAN))
    assert items[0]["trace_id"] == items[1]["trace_id"] == TRACE
    assert items[0]["span_id"] == SPAN
    assert items[2] == {"message": "own", "trace_id": own}
    assert items[3]["span_id"] is None
    assert items[4] == "not an object"
    fill_trace_context(items, None)  # no header: nothing changes


@pytest.mark.parametrize("seconds", [1, 5, 127, 128, 300, 2**31])
def test_retry_info_is_what_exporters_parse(seconds: int) -> None:
    info = RetryInfo()
    info.ParseFromString(retry_info(seconds))
    assert info.retry_delay.seconds == seconds


@pytest.mark.parametrize(
    ("status", "code", "retry"),
    [
        (400, StatusCode.INVALID_ARGUMENT, None),
        (413, StatusCode.INVALID_ARGUMENT, None),
        (401, StatusCode.UNAUTHENTICATED, None),
        (403, StatusCode.PERMISSION_DENIED, None),
        (429, StatusCode.RESOURCE_EXHAUSTED, 7),
        (503, StatusCode.UNAVAILABLE, 7),
    ],
)
def test_grpc_status_for_each_http_refusal(
    status: int, code: StatusCode, retry: int | None
) -> None:
    refused = status_for(ApiError(status, "x", "why", headers={"Retry-After": "7"}))
    assert refused.code == code
    assert refused.retry_after_s == retry
    assert refused.detail == "why"


def test_base64_ids_in_json_are_not_mistaken_for_hex() -> None:
    # OTLP/JSON ids are hex; a base64 id (the plain protobuf JSON mapping) is refused clearly.
    with pytest.raises(ApiError):
        decode_json(otlp_json(traceId=base64.b64encode(bytes(16)).decode()))
