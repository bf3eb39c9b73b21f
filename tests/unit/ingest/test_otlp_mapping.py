"""OTLP log records → JSON API events: every mapped event passes the gateway's event rule.

Records are built by the OpenTelemetry SDK's own encoder where the SDK can
express them, by hand otherwise (hostile shapes no SDK sends).
"""

from __future__ import annotations

import logging
import math
import uuid
import warnings
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from logriver_common.event import EventLimits, Level, LogEvent
from logriver_ingest.otlp_mapping import (
    DROPPED_ATTRIBUTES,
    FLATTENED_VALUES,
    INVALID_IDS,
    UNKNOWN_SERVICE,
    clean_key,
    level_of,
    map_request,
    service_name,
)

LIMITS = EventLimits()
NOW_NS = int(datetime.now(UTC).timestamp() * 1e9)


def kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def s(text: str) -> AnyValue:
    return AnyValue(string_value=text)


def request_of(
    *records: LogRecord,
    resource: list[KeyValue] | None = None,
    scope: InstrumentationScope | None = None,
) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=ResourceProto(
                    attributes=[kv("service.name", s("checkout"))] if resource is None else resource
                ),
                scope_logs=[ScopeLogs(scope=scope, log_records=list(records))],
            )
        ]
    )


def record(**fields: Any) -> LogRecord:
    fields.setdefault("time_unix_nano", NOW_NS)
    fields.setdefault("body", s("hello"))
    return LogRecord(**fields)


def accepted(item: dict[str, Any], limits: EventLimits = LIMITS) -> LogEvent:
    """The gateway's rule accepts the mapped event (as validate_items would run it)."""
    return LogEvent.model_validate(
        {**item, "received_at": datetime.now(UTC)}, context=limits.context()
    )


def only_item(request: ExportLogsServiceRequest, limits: EventLimits = LIMITS) -> dict[str, Any]:
    mapped = map_request(request, limits)
    assert len(mapped.items) == 1
    return mapped.items[0]


def sdk_request(emit: Any, resource: dict[str, Any]) -> ExportLogsServiceRequest:
    """What the SDK's OTLPLogExporter would send for the records ``emit`` logs."""
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider(resource=Resource.create(resource))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger(f"test.otlp.{uuid.uuid4().hex[:6]}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    with warnings.catch_warnings():
        # Deprecated in SDK 1.39 for opentelemetry-instrumentation-logging's handler (not
        # installed here), and still what most applications use.
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    return encode_logs(exporter.get_finished_logs())


def test_sdk_records_map_to_events_the_gateway_accepts() -> None:
    def emit(logger: logging.Logger) -> None:
        logger.warning("card declined for order %s", 42, extra={"order.id": 42, "user": "u1"})
        logger.error("boom", extra={"retry": True, "ratio": 0.5, "tags": ["a", "b"]})
        logger.debug("details")

    request = sdk_request(
        emit,
        {
            "service.name": "checkout",
            "host.name": "web-1",
            "deployment.environment.name": "staging",
            "cloud.region": "eu-west-1",
        },
    )
    items = map_request(request, LIMITS).items
    assert [i["level"] for i in items] == ["WARNING", "ERROR", "DEBUG"]
    first = accepted(items[0])
    assert first.service == "checkout"
    assert first.host == "web-1"
    assert first.env == "staging"
    assert first.message == "card declined for order 42"
    assert first.metadata is not None
    assert first.metadata["order_id"] == 42
    assert first.metadata["user"] == "u1"
    # Mapped resource attributes leave metadata.resource; the others stay.
    resource = first.metadata["resource"]
    assert resource["cloud_region"] == "eu-west-1"
    assert "service_name" not in resource
    assert "host_name" not in resource
    assert resource["telemetry_sdk_language"] == "python"
    assert first.metadata["scope"]["name"].startswith("test.otlp.")
    assert "severity_text" not in first.metadata  # "WARN" says the same as the number
    second = accepted(items[1])
    assert second.metadata is not None
    assert second.metadata["tags"] == ["a", "b"]
    assert second.metadata["retry"] is True
    # The SDK stamps the time: the event keeps it (to the microsecond).
    assert abs((first.timestamp - datetime.now(UTC)).total_seconds()) < 60


def test_sdk_records_inside_a_span_carry_its_ids() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("t")
    ids: list[tuple[str, str]] = []

    def emit(logger: logging.Logger) -> None:
        with tracer.start_as_current_span("work") as span:
            ctx = span.get_span_context()
            ids.append((format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")))
            logger.info("inside")
        logger.info("outside")

    items = map_request(sdk_request(emit, {"service.name": "svc"}), LIMITS).items
    inside, outside = (accepted(i) for i in items)
    assert (inside.trace_id, inside.span_id) == ids[0]
    assert outside.trace_id is None
    assert outside.span_id is None


@pytest.mark.parametrize(
    ("number", "text", "level", "agrees"),
    [
        (SeverityNumber.TRACE, "", Level.DEBUG, True),
        (SeverityNumber.DEBUG4, "", Level.DEBUG, True),
        (SeverityNumber.INFO, "INFO", Level.INFO, True),
        (SeverityNumber.INFO4, "", Level.INFO, True),
        (SeverityNumber.WARN, "WARN", Level.WARNING, True),
        (SeverityNumber.ERROR3, "", Level.ERROR, True),
        (SeverityNumber.FATAL, "FATAL", Level.CRITICAL, True),
        (SeverityNumber.FATAL4, "", Level.CRITICAL, True),
        (SeverityNumber.UNSPECIFIED, "warning", Level.WARNING, True),
        (SeverityNumber.UNSPECIFIED, "Error", Level.ERROR, True),
        (SeverityNumber.UNSPECIFIED, "", Level.INFO, True),
        (SeverityNumber.UNSPECIFIED, "SEVERE", Level.INFO, False),
        (SeverityNumber.ERROR, "SEVERE", Level.ERROR, False),
        (SeverityNumber.ERROR, "info", Level.ERROR, False),
    ],
)
def test_severity_number_then_text_then_info(
    number: SeverityNumber, text: str, level: Level, agrees: bool
) -> None:
    assert level_of(number.value, text) == (level, agrees)


def test_out_of_range_severity_numbers_fall_back_to_text() -> None:
    assert level_of(25, "") == (Level.INFO, True)
    assert level_of(-3, "debug") == (Level.DEBUG, True)
    assert level_of(2**31 - 1, "fatal") == (Level.CRITICAL, True)


def test_a_severity_text_that_says_something_else_is_kept() -> None:
    item = only_item(request_of(record(severity_number=17, severity_text="SEVERE")))
    assert item["level"] == "ERROR"
    metadata = accepted(item).metadata
    assert metadata is not None
    assert metadata["severity_text"] == "SEVERE"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, UNKNOWN_SERVICE),
        ("", UNKNOWN_SERVICE),
        ("checkout", "checkout"),
        ("unknown_service:python", "unknown_service_python"),
        ("my service/v2", "my_service_v2"),
        ("é" * 10, "_" * 10),
        ("x" * 200, "x" * 64),
    ],
)
def test_service_names_are_sanitised(raw: str | None, expected: str) -> None:
    assert service_name(raw) == expected
    resource = [] if raw is None else [kv("service.name", s(raw))]
    item = only_item(request_of(record(), resource=resource))
    assert accepted(item).service == expected
    if raw and raw != expected:
        # The sender's own name is kept where it was changed.
        assert item["metadata"]["resource"]["service_name"] == raw


def test_a_non_string_service_name_is_unknown_service() -> None:
    item = only_item(request_of(record(), resource=[kv("service.name", AnyValue(int_value=3))]))
    assert accepted(item).service == UNKNOWN_SERVICE


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("http.request.method", "http_request_method"),
        ("$where", "_where"),
        ("$", "_"),
        ("a\x00b", "ab"),
        ("\x00", "_"),
        ("", "_"),
        ("k" * 300, "k" * 128),
        ("ünïcode.ключ", "ünïcode_ключ"),
    ],
)
def test_keys_are_made_storable(key: str, expected: str) -> None:
    assert clean_key(key) == expected
    item = only_item(request_of(record(attributes=[kv(key, s("v"))])))
    metadata = accepted(item).metadata
    assert metadata is not None
    assert metadata[expected] == "v"


def test_record_attributes_named_like_the_mappers_keys_get_an_underscore() -> None:
    attrs = [kv(name, s("mine")) for name in ("resource", "scope", "body", "severity_text")]
    item = only_item(request_of(record(attributes=attrs, body=AnyValue(int_value=7))))
    metadata = accepted(item).metadata
    assert metadata is not None
    assert metadata["resource_"] == metadata["scope_"] == metadata["body_"] == "mine"
    assert metadata["body"] == 7
    assert item["message"] == "7"


@pytest.mark.parametrize(
    ("body", "message", "stored"),
    [
        (s("plain line"), "plain line", None),
        (AnyValue(), "", None),
        (AnyValue(int_value=-(2**63)), str(-(2**63)), -(2**63)),
        (AnyValue(bool_value=False), "false", False),
        (AnyValue(double_value=1.5), "1.5", 1.5),
        (AnyValue(double_value=math.inf), '"Infinity"', "Infinity"),
        (AnyValue(double_value=math.nan), '"NaN"', "NaN"),
        (AnyValue(bytes_value=b"\x00\xff"), '"AP8="', "AP8="),
        (
            AnyValue(kvlist_value=KeyValueList(values=[kv("a.b", s("c"))])),
            '{"a_b":"c"}',
            {"a_b": "c"},
        ),
        (
            AnyValue(array_value=ArrayValue(values=[s("x"), AnyValue(int_value=1)])),
            '["x",1]',
            ["x", 1],
        ),
    ],
)
def test_bodies(body: AnyValue, message: str, stored: Any) -> None:
    item = only_item(request_of(record(body=body)))
    event = accepted(item)
    assert event.message == message
    if stored is None:
        assert event.metadata is None or "body" not in event.metadata
    else:
        assert event.metadata is not None
        assert event.metadata["body"] == stored


def test_absent_body_field_is_an_empty_message() -> None:
    item = only_item(request_of(LogRecord(time_unix_nano=NOW_NS)))
    assert accepted(item).message == ""


@pytest.mark.parametrize(
    ("trace_id", "span_id", "expect_trace", "expect_span", "warned"),
    [
        (bytes(range(1, 17)), bytes(range(1, 9)), bytes(range(1, 17)).hex(), "0102030405060708", 0),
        (b"", b"", None, None, 0),
        (b"\x00" * 16, b"\x00" * 8, None, None, 0),
        (bytes(range(1, 17)), b"\x00" * 8, bytes(range(1, 17)).hex(), None, 0),
        (b"\x01" * 15, b"\x01" * 8, None, None, 1),
        (b"\x01" * 17, b"\x01" * 8, None, None, 1),
        (b"\x01" * 16, b"\x01" * 9, "01" * 16, None, 1),
        (b"\x00" * 16, b"\x01" * 8, None, None, 0),  # a span without a trace means nothing
    ],
)
def test_trace_and_span_ids(
    trace_id: bytes,
    span_id: bytes,
    expect_trace: str | None,
    expect_span: str | None,
    warned: int,
) -> None:
    mapped = map_request(request_of(record(trace_id=trace_id, span_id=span_id)), LIMITS)
    event = accepted(mapped.items[0])
    assert (event.trace_id, event.span_id) == (expect_trace, expect_span)
    assert mapped.warnings[INVALID_IDS] == warned


def test_time_falls_back_to_observed_time_then_to_receive_time() -> None:
    observed = NOW_NS - 3_600 * 10**9
    item = only_item(request_of(record(time_unix_nano=0, observed_time_unix_nano=observed)))
    assert accepted(item).timestamp == datetime.fromtimestamp(observed // 1000 / 1e6, UTC)
    item = only_item(request_of(record(time_unix_nano=0)))
    assert "timestamp" not in item
    assert "id" not in item
    assert abs((accepted(item).timestamp - datetime.now(UTC)).total_seconds()) < 5


def test_the_largest_time_maps_and_the_event_rule_refuses_it_as_future() -> None:
    item = only_item(request_of(record(time_unix_nano=2**64 - 1)))
    assert item["timestamp"].startswith("2554-")
    with pytest.raises(ValueError, match="future"):
        accepted(item)


def test_ids_are_stable_time_ordered_uuid_v8() -> None:
    earlier = record(time_unix_nano=NOW_NS - 10**9)
    later = record(time_unix_nano=NOW_NS)
    first = map_request(request_of(earlier, later), LIMITS).items
    again = map_request(request_of(earlier, later), LIMITS).items
    assert [i["id"] for i in first] == [i["id"] for i in again]  # a retry is stored once
    assert first[0]["id"] < first[1]["id"]
    parsed = uuid.UUID(first[0]["id"])
    assert parsed.version == 8
    assert parsed.variant == uuid.RFC_4122
    # Any difference in the record, its scope or its resource is another event.
    other_body = map_request(request_of(record(body=s("other"))), LIMITS).items[0]["id"]
    other_scope = map_request(
        request_of(later, scope=InstrumentationScope(name="x")), LIMITS
    ).items[0]["id"]
    other_resource = map_request(
        request_of(later, resource=[kv("service.name", s("b"))]), LIMITS
    ).items[0]["id"]
    assert len({first[1]["id"], other_body, other_scope, other_resource}) == 4


def nested(depth: int) -> AnyValue:
    value = s("leaf")
    for n in range(depth):
        value = (
            AnyValue(kvlist_value=KeyValueList(values=[kv(f"k{n}", value)]))
            if n % 2
            else AnyValue(array_value=ArrayValue(values=[value]))
        )
    return value


@pytest.mark.parametrize("depth", [1, 3, 4, 5, 20, 30])
def test_values_nested_past_the_limit_become_json_text(depth: int) -> None:
    mapped = map_request(request_of(record(attributes=[kv("deep", nested(depth))])), LIMITS)
    event = accepted(mapped.items[0])
    assert event.metadata is not None
    # metadata is level 1, the attribute's container level 2: 4 levels fit under depth 5.
    assert mapped.warnings[FLATTENED_VALUES] == (1 if depth > 4 else 0)
    assert orjson.dumps(event.metadata["deep"]).count(b"leaf") == 1


def test_ten_thousand_attributes_keep_the_event_and_count_the_dropped() -> None:
    attrs = [kv(f"attr.{n}", AnyValue(int_value=n)) for n in range(10_000)]
    resource = [kv("service.name", s("svc")), *(kv(f"r{n}", s("x")) for n in range(5_000))]
    mapped = map_request(request_of(record(attributes=attrs), resource=resource), LIMITS)
    event = accepted(mapped.items[0])
    assert event.metadata is not None
    kept = [k for k in event.metadata if k.startswith("attr_")]
    # Record attributes come first and in order; the rest is counted, not silently lost.
    assert kept == [f"attr_{n}" for n in range(len(kept))]
    assert len(kept) == LIMITS.max_metadata_keys - 1  # one key is kept for the count
    assert event.metadata["dropped_attributes_count"] == 10_000 - len(kept) + 5_000
    assert mapped.warnings[DROPPED_ATTRIBUTES] == 1


def test_attributes_past_the_byte_limit_are_dropped_largest_never_fits() -> None:
    limits = EventLimits(max_metadata_bytes=1024)
    attrs = [
        kv("small", s("x")),
        kv("huge", s("y" * 5000)),
        kv("after", s("z")),
    ]
    mapped = map_request(request_of(record(attributes=attrs, dropped_attributes_count=3)), limits)
    event = accepted(mapped.items[0], limits)
    assert event.metadata is not None
    assert event.metadata["small"] == "x"
    assert event.metadata["after"] == "z"
    assert "huge" not in event.metadata
    assert event.metadata["dropped_attributes_count"] == 1 + 3  # ours plus the sender's


def test_a_tiny_key_budget_still_gives_a_valid_event() -> None:
    limits = EventLimits(max_metadata_keys=1, max_metadata_depth=1)
    attrs = [kv("a", nested(3)), kv("b", s("x"))]
    mapped = map_request(
        request_of(record(attributes=attrs, body=nested(2)), scope=InstrumentationScope(name="s")),
        limits,
    )
    event = accepted(mapped.items[0], limits)
    assert event.metadata is None or len(event.metadata) <= 1


def test_a_message_over_the_cap_is_left_for_the_event_rule_to_refuse() -> None:
    item = only_item(request_of(record(body=s("m" * (LIMITS.max_message_bytes + 1)))))
    with pytest.raises(ValueError, match="message is longer"):
        accepted(item)


def test_long_host_and_env_stay_in_metadata_instead_of_failing_the_event() -> None:
    resource = [
        kv("service.name", s("svc")),
        kv("host.name", s("h" * 300)),
        kv("deployment.environment", s("e" * 100)),
    ]
    event = accepted(only_item(request_of(record(), resource=resource)))
    assert event.host is None
    assert event.env is None
    assert event.metadata is not None
    assert event.metadata["resource"]["host_name"] == "h" * 300


def test_the_older_deployment_environment_attribute_maps_to_env() -> None:
    resource = [kv("service.name", s("svc")), kv("deployment.environment", s("prod"))]
    assert accepted(only_item(request_of(record(), resource=resource))).env == "prod"


def test_every_record_of_every_resource_and_scope_in_order() -> None:
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=ResourceProto(attributes=[kv("service.name", s(f"svc{r}"))]),
                scope_logs=[
                    ScopeLogs(
                        scope=InstrumentationScope(name=f"scope{c}", version="1.0"),
                        log_records=[record(body=s(f"{r}.{c}.{n}")) for n in range(3)],
                    )
                    for c in range(2)
                ],
            )
            for r in range(2)
        ]
    )
    items = map_request(request, LIMITS).items
    assert [i["message"] for i in items] == [
        f"{r}.{c}.{n}" for r in range(2) for c in range(2) for n in range(3)
    ]
    event = accepted(items[-1])
    assert event.service == "svc1"
    assert event.metadata is not None
    assert event.metadata["scope"] == {"name": "scope1", "version": "1.0"}


# --- property: whatever AnyValues arrive, the mapper returns an event the rule accepts ----

scalars = st.one_of(
    st.text(max_size=20).map(lambda t: AnyValue(string_value=t)),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: AnyValue(int_value=i)),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: AnyValue(double_value=f)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
    st.binary(max_size=20).map(lambda b: AnyValue(bytes_value=b)),
    st.just(AnyValue()),
)
keys = st.text(max_size=12)
any_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
        st.lists(st.tuples(keys, children), max_size=4).map(
            lambda pairs: AnyValue(kvlist_value=KeyValueList(values=[kv(k, v) for k, v in pairs]))
        ),
    ),
    max_leaves=40,
)
attribute_lists = st.lists(st.tuples(keys, any_values), max_size=12).map(
    lambda pairs: [kv(k, v) for k, v in pairs]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    attrs=attribute_lists,
    resource=attribute_lists,
    body=any_values,
    severity=st.integers(-(2**31), 2**31 - 1),
    text=st.text(max_size=10),
    trace_id=st.binary(max_size=20),
    span_id=st.binary(max_size=10),
    limits=st.builds(
        EventLimits,
        max_metadata_depth=st.integers(1, 6),
        max_metadata_keys=st.integers(1, 30),
        max_metadata_bytes=st.integers(64, 2048),
    ),
)
def test_any_record_maps_to_an_accepted_event(
    attrs: list[KeyValue],
    resource: list[KeyValue],
    body: AnyValue,
    severity: int,
    text: str,
    trace_id: bytes,
    span_id: bytes,
    limits: EventLimits,
) -> None:
    request = request_of(
        LogRecord(
            time_unix_nano=NOW_NS,
            severity_number=severity,  # type: ignore[arg-type]
            severity_text=text,
            body=body,
            attributes=attrs,
            trace_id=trace_id,
            span_id=span_id,
        ),
        resource=resource,
        scope=InstrumentationScope(name="s", attributes=attrs),
    )
    item = only_item(request, limits)
    message = item["message"]
    if len(message.encode()) > limits.max_message_bytes or "\x00" in message:
        # The message is the sender's text: refused by the rule, as in a JSON event.
        with pytest.raises(ValueError, match=r"message|NUL"):
            accepted(item, limits)
        return
    accepted(item, limits)
