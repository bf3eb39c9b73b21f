"""OpenTelemetry: one tracer provider per process, OTLP to Jaeger, W3C context on Kafka.

Kafka headers carry the ``traceparent``/``tracestate`` of the request that
produced a record, so consumers can link their spans to the producer's trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from logriver_common.settings import TelemetrySettings

KafkaHeaders = Sequence[tuple[str, bytes]]
_EXCLUDED_URLS = "healthz,readyz,metrics"


def setup_tracing(service_name: str, settings: TelemetrySettings) -> TracerProvider:
    """Create the process's tracer provider; the caller shuts it down in its lifespan."""
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: f"logriver-{service_name}"}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    if settings.enabled:
        exporter = OTLPSpanExporter(endpoint=settings.endpoint, insecure=True)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    return provider


def instrument_app(app: FastAPI, provider: TracerProvider) -> None:
    """One span per request; no spans for each ASGI ``send``/``receive``.

    Those per-message spans would cost more CPU than a streamed response's
    delivery itself (SSE writes thousands of messages a second) and flood Jaeger.
    """
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=_EXCLUDED_URLS,
        exclude_spans=["send", "receive"],
    )


def inject_kafka_headers() -> list[tuple[str, bytes]]:
    """The current W3C trace context as Kafka record headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(key, value.encode()) for key, value in carrier.items()]


def extract_kafka_context(
    headers: Iterable[tuple[str, bytes | None]] | None,
) -> otel_context.Context:
    """The producer's trace context from a record's headers (empty context if none)."""
    carrier = {
        key: value.decode("latin-1")
        for key, value in (headers or ())
        if value is not None and key in ("traceparent", "tracestate")
    }
    return propagate.extract(carrier)


def span_context_from_headers(
    headers: Iterable[tuple[str, bytes | None]] | None,
) -> trace.SpanContext | None:
    """The producer's span context, for a span link from a consumer batch."""
    span = trace.get_current_span(extract_kafka_context(headers))
    ctx = span.get_span_context()
    return ctx if ctx.is_valid else None
