"""A firing alert joins the trace of the event that made it fire."""

from __future__ import annotations

from datetime import timedelta

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from logriver_alerter.evaluator import Evaluator
from logriver_alerter.settings import AlerterSettings
from logriver_common.event import Level, LogEvent
from tests.unit.alerter.fakes import FakeStore
from tests.unit.alerter.test_evaluator import Clock, Sink, feed, make_rule

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


async def _evaluator() -> tuple[Evaluator, InMemorySpanExporter, Sink, Clock]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store, sink, clock = FakeStore([make_rule()]), Sink(), Clock()
    evaluator = Evaluator(
        store.repos,
        sink,
        AlerterSettings(lateness_s=0),
        clock,
        tracer=provider.get_tracer("test"),
    )
    await evaluator.refresh()
    evaluator.install(0, {}, [])
    return evaluator, exporter, sink, clock


async def test_firing_span_is_a_child_of_the_traced_sample_event() -> None:
    evaluator, exporter, sink, clock = await _evaluator()
    feed(evaluator, clock, "api", Level.ERROR, 7)
    traced = LogEvent(
        service="api",
        level=Level.ERROR,
        message="traced failure",
        timestamp=clock.now - timedelta(milliseconds=1),
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
    )
    evaluator.ingest(0, traced, clock.now)
    clock.now += timedelta(seconds=1)

    await evaluator.tick()

    assert [n.kind for n in sink.sent] == ["firing", "firing"]
    (span,) = exporter.get_finished_spans()
    assert span.name == "logriver.alerter.notify"
    assert span.context is not None
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == SPAN_ID
    assert span.attributes is not None
    assert span.attributes["logriver.alert.kind"] == "firing"
    assert span.attributes["logriver.alert.service"] == "api"


async def test_no_span_without_a_traced_event() -> None:
    evaluator, exporter, sink, clock = await _evaluator()
    feed(evaluator, clock, "api", Level.ERROR, 8)
    clock.now += timedelta(seconds=1)

    await evaluator.tick()

    assert [n.kind for n in sink.sent] == ["firing", "firing"]
    assert exporter.get_finished_spans() == ()
