"""Consumers' producer contexts: parsed once per header value, sampled only, bounded."""

from __future__ import annotations

from logriver_common.telemetry import (
    HeaderContexts,
    ProducerContexts,
    kafka_attributes,
    sampled_producer_context,
    span_context_from_headers,
    traceparent_header,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def headers(span: str, flags: str = "01") -> list[tuple[str, bytes | None]]:
    return [("x-other", b"1"), ("traceparent", f"00-{TRACE}-{span}-{flags}".encode())]


def test_records_of_one_context_are_counted_under_it() -> None:
    contexts = ProducerContexts()
    first = contexts.of(headers("00f067aa0ba902b7"))
    assert first is not None
    assert format(first.trace_id, "032x") == TRACE
    for _ in range(999):
        assert contexts.of(headers("00f067aa0ba902b7")) == first
    assert contexts.records == {(first.trace_id, first.span_id): 1000}


def test_unsampled_absent_and_malformed_contexts_get_no_span() -> None:
    contexts = ProducerContexts()
    assert contexts.of(headers("00f067aa0ba902b7", flags="00")) is None
    assert contexts.of(None) is None
    assert contexts.of([]) is None
    assert contexts.of([("traceparent", None)]) is None
    for junk in (b"", b"00-zz-yy-01", b"\xff\xfe", b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01"):
        assert contexts.of([("traceparent", junk)]) is None
    assert contexts.records == {}


def test_contexts_are_bounded_per_batch() -> None:
    contexts = ProducerContexts(limit=3)
    found = [contexts.of(headers(f"{i + 1:016x}")) for i in range(10)]
    assert sum(context is not None for context in found) == 3
    assert len(contexts.records) == 3


def test_helpers() -> None:
    assert traceparent_header([("a", b"1")]) is None
    assert traceparent_header(headers("00f067aa0ba902b7")) is not None
    assert sampled_producer_context(headers("00f067aa0ba902b7", flags="00")) is None
    attributes = kafka_attributes(
        "process", "logs.v1", partition=3, offset=7, key=b"\xffcheckout", group="g", count=2
    )
    assert attributes == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "logs.v1",
        "messaging.destination.partition.id": "3",
        "messaging.kafka.offset": 7,
        "messaging.kafka.message.key": "\ufffdcheckout",
        "messaging.consumer.group.name": "g",
        "messaging.batch.message_count": 2,
    }


def test_header_contexts_parse_each_header_once_and_match_the_propagator() -> None:
    contexts = HeaderContexts(max_entries=3)
    spans = [f"{n:016x}" for n in range(1, 6)]
    for span in spans:  # more distinct headers than it holds: cleared, never wrong
        for flags in ("01", "00"):  # unsampled contexts link too
            record = headers(span, flags)
            assert contexts.of(record) == span_context_from_headers(record)
            assert contexts.of(record) is contexts.of(record)
    with_state = [*headers(spans[0]), ("tracestate", b"vendor=1")]
    assert contexts.of(with_state) == span_context_from_headers(with_state)
    assert contexts.of(with_state) is not None
    assert contexts.of(with_state).trace_state.get("vendor") == "1"  # type: ignore[union-attr]
    assert contexts.of(headers(spans[0])).trace_state.get("vendor") is None  # type: ignore[union-attr]
    assert contexts.of(None) is None
    assert contexts.of([("x-other", b"1")]) is None
    assert contexts.of([("traceparent", b"00-zz-yy-01")]) is None
    assert len(contexts._parsed) <= 3
