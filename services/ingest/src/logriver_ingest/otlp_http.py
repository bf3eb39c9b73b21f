"""OTLP/HTTP on ``POST /v1/logs``: protobuf (``application/x-protobuf``) or JSON whose body
is an ExportLogsServiceRequest (it carries ``resourceLogs``), gzip or not.

So ``OTEL_EXPORTER_OTLP_ENDPOINT=http://<gateway>:8000`` works unchanged. The
answer is ``200`` with an ExportLogsServiceResponse in the request's encoding
(``partial_success`` counts refused records); a body that is not OTLP is ``400``;
``429``/``503`` carry ``Retry-After``. Errors use the gateway's one JSON shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from fastapi import Request, Response
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from logriver_common.web.errors import ApiError
from logriver_ingest import metrics
from logriver_ingest.otlp_export import (
    ExportResult,
    decode_json,
    decode_protobuf,
    export,
    is_otlp_json,
    response_json,
)
from logriver_ingest.parsing import GZIP_ENCODINGS, media_type, read_body

if TYPE_CHECKING:
    from logriver_common.auth import ApiKey
    from logriver_ingest.routes import Gateway

PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
PROTOBUF = "application/x-protobuf"

__all__ = ["export_json", "export_protobuf", "is_otlp_json", "is_otlp_protobuf"]


def is_otlp_protobuf(content_type: str | None) -> bool:
    return media_type(content_type) in PROTOBUF_TYPES


def _gzip(content_encoding: str | None) -> bool:
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in GZIP_ENCODINGS:
        return True
    if encoding != "identity":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Encoding {encoding[:100]!r} is not accepted; use gzip or none",
        )
    return False


def _count(transport: str, status: int) -> None:
    metrics.OTLP_REQUESTS.labels(transport, str(status)).inc()


async def _export(
    message: ExportLogsServiceRequest,
    request: Request,
    gateway: Gateway,
    key: ApiKey,
    transport: str,
) -> ExportResult:
    try:
        result = await export(
            message, gateway, key.id, traceparent=request.headers.get("traceparent")
        )
    except ApiError as exc:  # export() counted the refused records
        _count(transport, exc.status_code)
        raise
    _count(transport, 200)
    return result


async def export_protobuf(request: Request, gateway: Gateway, key: ApiKey) -> Response:
    try:
        body = await read_body(
            request.stream(),
            content_length=request.headers.get("content-length"),
            gzip=_gzip(request.headers.get("content-encoding")),
            limits=gateway.body_limits,
        )
        message = decode_protobuf(body)
    except ApiError as exc:
        metrics.EVENTS_REJECTED.labels(exc.error).inc()
        _count("http_protobuf", exc.status_code)
        raise
    result = await _export(message, request, gateway, key, "http_protobuf")
    return Response(result.response().SerializeToString(), status_code=200, media_type=PROTOBUF)


async def export_json(
    value: dict[str, Any], request: Request, gateway: Gateway, key: ApiKey
) -> Response:
    """``value``: the request body, already read and parsed by the JSON route."""
    try:
        message = decode_json(value)
    except ApiError as exc:
        metrics.EVENTS_REJECTED.labels(exc.error).inc()
        _count("http_json", exc.status_code)
        raise
    result = await _export(message, request, gateway, key, "http_json")
    return Response(
        orjson.dumps(response_json(result)), status_code=200, media_type="application/json"
    )
