"""The writer's per-producer child spans put the writer hop into each producer's trace."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from logriver_writer.consumer import MAX_STORE_SPANS, start_store_spans
from logriver_writer.decode import Accepted
from tests.unit.writer.fakes import FakeRecord

BATCH = SpanContext(0xBA7C, 0xBA7C, is_remote=False, trace_flags=TraceFlags(1))


def _accepted(context: SpanContext | None) -> Accepted:
    return Accepted(FakeRecord(b"{}"), {}, None, context)


def _producer(trace_id: int, span_id: int = 1, *, sampled: bool = True) -> SpanContext:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)


def _tracer() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_one_child_span_per_sampled_producer_context() -> None:
    provider, exporter = _tracer()
    first, second = _producer(0xA1, 1), _producer(0xB2, 2)
    batch = [
        _accepted(first),
        _accepted(None),
        _accepted(first),
        _accepted(second),
        _accepted(_producer(0xC3, sampled=False)),
    ]

    spans = start_store_spans(provider.get_tracer("test"), batch, BATCH)
    assert exporter.get_finished_spans() == ()  # open until the batch is stored
    for span in spans:
        span.end()

    finished = exporter.get_finished_spans()
    assert [s.name for s in finished] == ["logriver.writer.store"] * 2
    by_trace = {s.context.trace_id: s for s in finished if s.context is not None}
    assert set(by_trace) == {0xA1, 0xB2}
    for producer, events in ((first, 2), (second, 1)):
        child = by_trace[producer.trace_id]
        assert child.parent is not None
        assert child.parent.span_id == producer.span_id
        assert child.attributes is not None
        assert child.attributes["logriver.events"] == events
        assert [link.context.trace_id for link in child.links] == [BATCH.trace_id]


def test_child_spans_are_bounded_per_batch() -> None:
    provider, _ = _tracer()
    batch = [_accepted(_producer(trace_id)) for trace_id in range(1, MAX_STORE_SPANS + 50)]

    spans = start_store_spans(provider.get_tracer("test"), batch, BATCH)

    assert len(spans) == MAX_STORE_SPANS
    for span in spans:
        span.end()
