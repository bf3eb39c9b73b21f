"""OpenTelemetry: one tracer provider per process, OTLP to Jaeger, W3C context on Kafka.

Kafka headers carry the ``traceparent``/``tracestate`` of the request that
produced a record, so consumers can link their spans to the producer's trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from starlette.types import ASGIApp

from logriver_common.settings import TelemetrySettings

KafkaHeaders = Sequence[tuple[str, bytes]]
_EXCLUDED_URLS = "healthz,readyz,metrics"


def setup_tracing(service_name: str, settings: TelemetrySettings) -> TracerProvider:
    """Create the process's tracer provider; the caller shuts it down in its lifespan."""
    # Disabled: spans are still started (their ids go into logs and Kafka headers, and
    # the trace id continues the caller's) but never recorded, since nothing exports them.
    sampler = (
        ParentBased(TraceIdRatioBased(settings.sample_ratio)) if settings.enabled else ALWAYS_OFF
    )
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: f"logriver-{service_name}"}), sampler=sampler
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
    Span names are looked up once per distinct request path (:class:`SpanNames`).
    """
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=_EXCLUDED_URLS,
        exclude_spans=["send", "receive"],
    )
    build = app.build_middleware_stack

    def build_with_span_names() -> ASGIApp:
        stack = build()
        # The instrumentor's stack is ServerErrorMiddleware(OpenTelemetryMiddleware(...)).
        otel = getattr(stack, "app", None)
        if isinstance(otel, OpenTelemetryMiddleware):
            otel.default_span_details = SpanNames(otel.default_span_details)
        return stack

    app.build_middleware_stack = build_with_span_names  # type: ignore[method-assign]


# As OpenTelemetryMiddleware types it: (ASGI scope) -> (span name, attributes).
SpanDetails = Callable[[dict[Any, Any]], tuple[str, dict[Any, Any]]]


class SpanNames:
    """A request's span name and route attribute, computed once per method and path.

    The FastAPI instrumentation names a span after its route template
    (``GET /v1/logs/{event_id}``) by matching the request against every route of
    the app in turn, before routing: for a query answer served from memory that was
    15% of the process's CPU. Bounded: cleared when it holds ``max_entries`` (paths
    with ids in them are all distinct), and a path longer than ``max_path`` is looked
    up every time, so a client sending long random paths cannot make it hold much.
    """

    def __init__(self, details: SpanDetails, max_entries: int = 1024, max_path: int = 256) -> None:
        self.details = details
        self.max_entries = max_entries
        self.max_path = max_path
        self._known: dict[tuple[str, str, str], tuple[str, dict[Any, Any]]] = {}

    def __call__(self, scope: dict[Any, Any]) -> tuple[str, dict[Any, Any]]:
        if len(scope["path"]) > self.max_path:
            return self.details(scope)
        key = (scope["type"], scope.get("method", ""), scope["path"])
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= self.max_entries:
                self._known.clear()
            known = self._known[key] = self.details(scope)
        name, attributes = known
        return name, dict(attributes)  # the caller's own copy


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


def sampled_producer_context(
    headers: Iterable[tuple[str, bytes | None]] | None,
) -> trace.SpanContext | None:
    """The producer's span context when its trace is sampled, else None.

    Consumers use it to decide whether a record earns its own span: an unsampled
    trace is not recorded, so a child of it would be dropped anyway. A record
    without a ``traceparent`` header costs one scan of its (few) headers.
    """
    if not headers:
        return None
    for key, value in headers:
        if key == "traceparent" and value is not None:
            break
    else:
        return None
    context = span_context_from_headers(headers)
    if context is None or not context.trace_flags.sampled:
        return None
    return context


def traceparent_header(headers: Iterable[tuple[str, bytes | None]] | None) -> bytes | None:
    """The raw ``traceparent`` header value, if any (cheap: no parsing)."""
    for key, value in headers or ():
        if key == "traceparent":
            return value
    return None


class HeaderContexts:
    """Producer span contexts (sampled or not), each distinct trace header parsed once.

    For a consumer that links every record to its producer: a gateway request's records
    share one ``traceparent``, and the propagator's parse cost the writer 9% of its CPU
    when it ran per record. Bounded: cleared when it holds ``max_entries``.
    """

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self._parsed: dict[tuple[bytes | None, ...], trace.SpanContext | None] = {}

    def of(self, headers: Iterable[tuple[str, bytes | None]] | None) -> trace.SpanContext | None:
        parent, state = None, None
        for key, value in headers or ():
            if key == "traceparent":
                parent = value
            elif key == "tracestate":
                state = value
        if parent is None:
            return None
        cache_key = (parent, state)
        if cache_key in self._parsed:
            return self._parsed[cache_key]
        if len(self._parsed) >= self.max_entries:
            self._parsed.clear()
        context = self._parsed[cache_key] = span_context_from_headers(headers)
        return context


class ProducerContexts:
    """The sampled producer contexts of one fetched batch, each parsed once.

    A gateway request's records share one ``traceparent``, so a batch of thousands of
    records usually has a handful of contexts: consumers give each context one span
    (with the number of records), not each record, and at most ``limit`` of them.
    """

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._parsed: dict[bytes, trace.SpanContext | None] = {}
        self.records: dict[tuple[int, int], int] = {}

    def of(self, headers: Iterable[tuple[str, bytes | None]] | None) -> trace.SpanContext | None:
        """The record's sampled producer context (None if unsampled, absent, or over limit)."""
        raw = traceparent_header(headers)
        if raw is None:
            return None
        if raw in self._parsed:
            context = self._parsed[raw]
        else:
            context = sampled_producer_context(headers)
            if context is not None and len(self.records) >= self.limit:
                context = None
            self._parsed[raw] = context
            if context is not None:
                self.records.setdefault((context.trace_id, context.span_id), 0)
        if context is not None:
            self.records[(context.trace_id, context.span_id)] += 1
        return context


def kafka_attributes(
    operation: str,
    topic: str,
    *,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | None = None,
    group: str | None = None,
    count: int | None = None,
) -> dict[str, str | int]:
    """OpenTelemetry messaging semantic-convention attributes for one Kafka operation.

    ``operation`` is ``send``, ``receive`` or ``process`` (``messaging.operation.type``).
    """
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": topic,
    }
    if partition is not None:
        attributes["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        attributes["messaging.kafka.offset"] = offset
    if key is not None:
        attributes["messaging.kafka.message.key"] = key.decode("utf-8", "replace")
    if group is not None:
        attributes["messaging.consumer.group.name"] = group
    if count is not None:
        attributes["messaging.batch.message_count"] = count
    return attributes


def start_child_span(
    tracer: trace.Tracer,
    name: str,
    parent: trace.SpanContext,
    *,
    kind: trace.SpanKind = trace.SpanKind.CONSUMER,
    attributes: dict[str, str | int] | None = None,
) -> trace.Span:
    """A span whose parent is a remote (producer) context; the caller ends it."""
    return tracer.start_span(
        name,
        context=trace.set_span_in_context(trace.NonRecordingSpan(parent)),
        kind=kind,
        attributes=attributes,
    )
