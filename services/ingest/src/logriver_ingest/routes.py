"""``POST /v1/logs``: read → parse → rate-limit → validate and redact → publish → answer.

Every step that can refuse a request raises ``ApiError`` (the one error shape);
the answer is sent only after Kafka acked every accepted event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from logriver_common.auth import ApiKey, Scope, require_scope
from logriver_common.retention import RetentionPolicy
from logriver_common.web.errors import ApiError
from logriver_ingest import metrics, otlp_http
from logriver_ingest.admission import admit_and_publish, take_rate
from logriver_ingest.parsing import BodyLimits, check_headers, read_body, split_items
from logriver_ingest.publisher import Publisher
from logriver_ingest.rate_limit import RateLimiter
from logriver_ingest.redaction import Redactor
from logriver_ingest.trace_context import fill_trace_context, parse_traceparent

router = APIRouter(tags=["ingest"])


@dataclass(frozen=True, slots=True)
class Gateway:
    """What the route needs, built in the lifespan and kept on ``app.state.gateway``."""

    body_limits: BodyLimits
    validation_context: dict[str, Any]
    retention: RetentionPolicy
    redactor: Redactor
    publisher: Publisher
    rate_limiter: RateLimiter | None
    unavailable_retry_after_s: int


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Path of the bad field inside the event.")
    msg: str
    type: str


class ItemError(BaseModel):
    index: int = Field(description="Position of the event in the request (0-based).")
    errors: list[FieldError]


class Accepted(BaseModel):
    accepted: int = Field(description="Events acknowledged by Kafka.")
    ids: list[str] = Field(description="Ids of the accepted events, in request order.")


class PartiallyAccepted(Accepted):
    rejected: int = Field(description="Events refused; see `errors`. Do not resend them unchanged.")
    errors: list[ItemError]


class ErrorBody(BaseModel):
    error: str = Field(description="A stable error code.")
    detail: Any = Field(description="What is wrong; for 422, one entry per bad event.")
    request_id: str | None


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": Accepted, "description": "Every event was valid and Kafka acked it."},
    207: {
        "model": PartiallyAccepted,
        "description": "Some events were invalid: the valid ones were acked by Kafka (listed in "
        "`ids`), the invalid ones were not published (listed in `errors`).",
    },
    400: _error(
        "Body is not JSON / NDJSON / gzip (`malformed_json`, `malformed_body`), or is empty "
        "(`empty_body`)."
    ),
    401: _error("No API key, or an invalid or revoked one."),
    403: _error("The API key lacks the `ingest` scope."),
    413: _error(
        "Body over LOGRIVER_INGEST_MAX_BODY_BYTES or, decompressed, over "
        "LOGRIVER_INGEST_MAX_DECOMPRESSED_BYTES (`payload_too_large`); more events than "
        "LOGRIVER_INGEST_MAX_BATCH_EVENTS (`batch_too_large`). Nothing was published."
    ),
    415: _error("Content-Type or Content-Encoding not accepted."),
    431: _error("Request headers over LOGRIVER_INGEST_MAX_HEADER_BYTES (`headers_too_large`)."),
    422: _error(
        "No event was valid (`validation_failed`); `detail` is a list of "
        "`{index, errors: [{loc, msg, type}]}`. Nothing was published."
    ),
    429: _error("The key's token bucket is empty; retry after `Retry-After` seconds."),
    503: _error(
        "Kafka could not ack the events within LOGRIVER_INGEST_PUBLISH_DEADLINE_S, or the "
        "gateway has too many events awaiting acks. Retry after `Retry-After` seconds, with the "
        "same event `id`s so a retry is stored once."
    ),
}

_require_ingest = require_scope(Scope.INGEST)


async def authenticated(request: Request) -> ApiKey:
    """The shared auth dependency, plus a metric for the requests it refuses."""
    try:
        return await _require_ingest(request)
    except ApiError as exc:
        metrics.REQUESTS.labels(str(exc.status_code)).inc()
        metrics.EVENTS_REJECTED.labels(exc.error).inc()
        raise


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


@router.post(
    "/v1/logs",
    summary="Send log events",
    status_code=202,
    response_class=Response,
    responses=RESPONSES,
)
async def post_logs(request: Request, key: Annotated[ApiKey, Depends(authenticated)]) -> Response:
    """Accepts one event (a JSON object), a JSON array of events, or NDJSON
    (`application/x-ndjson`, one event per line), optionally `Content-Encoding: gzip`.

    Each event is validated on its own and secrets are redacted before publishing.
    The answer comes only after Kafka (acks=all) acknowledged every accepted event.
    """
    gateway: Gateway = request.app.state.gateway
    metrics.REQUESTS_IN_FLIGHT.inc()
    try:
        response = await _handle(request, gateway, key)
    except ApiError as exc:
        metrics.REQUESTS.labels(str(exc.status_code)).inc()
        raise
    finally:
        metrics.REQUESTS_IN_FLIGHT.dec()
    metrics.REQUESTS.labels(str(response.status_code)).inc()
    return response


async def _handle(request: Request, gateway: Gateway, key: ApiKey) -> Response:
    # OTLP/HTTP shares the path: protobuf by Content-Type, JSON by its `resourceLogs`.
    if otlp_http.is_otlp_protobuf(request.headers.get("content-type")):
        return await otlp_http.export_protobuf(request, gateway, key)
    try:
        ndjson, gzip = check_headers(
            request.headers.get("content-type"), request.headers.get("content-encoding")
        )
        body = await read_body(
            request.stream(),
            content_length=request.headers.get("content-length"),
            gzip=gzip,
            limits=gateway.body_limits,
        )
        items = split_items(body, ndjson=ndjson, max_events=gateway.body_limits.max_batch_events)
    except ApiError as exc:
        metrics.EVENTS_REJECTED.labels(exc.error).inc()
        raise
    if otlp_http.is_otlp_json(items):
        return await otlp_http.export_json(items[0], request, gateway, key)
    fill_trace_context(items, parse_traceparent(request.headers.get("traceparent")))

    await take_rate(gateway, key.id, len(items))
    batch = await admit_and_publish(gateway, items)
    if not batch.records:
        raise ApiError(422, "validation_failed", batch.errors)

    if batch.errors:
        return _json(
            {
                "accepted": len(batch.ids),
                "rejected": len(batch.errors),
                "ids": batch.ids,
                "errors": batch.errors,
            },
            207,
        )
    return _json({"accepted": len(batch.ids), "ids": batch.ids}, 202)
