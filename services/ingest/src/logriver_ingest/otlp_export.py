"""One OTLP export, whatever the transport: decode → map → rate-limit → validate → publish.

The records take the JSON API's road from the rate limiter on: the same
``validate_items`` (event rule, time policy, redaction), the same publisher
(acks=all, deadline, in-flight bound). Refusals of the whole request raise
``ApiError`` (HTTP answers it as is; gRPC maps it to a status code); refused
records are counted in the answer's ``partial_success``, as the OTLP spec says.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from logriver_common.event import EventLimits
from logriver_common.web.errors import ApiError
from logriver_ingest import metrics
from logriver_ingest.admission import admit_and_publish, take_rate
from logriver_ingest.otlp_mapping import count_records, map_request
from logriver_ingest.trace_context import fill_trace_context, parse_traceparent

if TYPE_CHECKING:
    from logriver_ingest.routes import Gateway

# JSON requests name fields in lowerCamelCase (the OTLP/JSON rule) or as in the .proto.
_RESOURCE_LOGS = ("resourceLogs", "resource_logs")
_SCOPE_LOGS = ("scopeLogs", "scope_logs")
_LOG_RECORDS = ("logRecords", "log_records")
_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id")
# How many refused records the error message names (the count covers them all).
MAX_NAMED_ERRORS = 5
# Protobuf's own default; past it a body is refused as undecodable.
MAX_JSON_NESTING = 100


@dataclass(frozen=True, slots=True)
class ExportResult:
    accepted: int
    rejected: int
    error_message: str

    def response(self) -> ExportLogsServiceResponse:
        if not self.rejected and not self.error_message:
            return ExportLogsServiceResponse()
        return ExportLogsServiceResponse(
            partial_success=ExportLogsPartialSuccess(
                rejected_log_records=self.rejected, error_message=self.error_message
            )
        )


def is_otlp_json(items: list[Any]) -> bool:
    """Whether a JSON body is an OTLP ExportLogsServiceRequest rather than an event."""
    return (
        len(items) == 1
        and isinstance(items[0], dict)
        and any(name in items[0] for name in _RESOURCE_LOGS)
    )


def decode_protobuf(body: bytes) -> ExportLogsServiceRequest:
    message = ExportLogsServiceRequest()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise ApiError(
            400, "malformed_body", f"the body is not an OTLP ExportLogsServiceRequest: {exc}"
        ) from None
    return message


def _first(mapping: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if name in mapping:
            return mapping[name]
    return None


def _hex_ids_to_base64(value: dict[str, Any]) -> None:
    """OTLP/JSON writes trace and span ids in hex; protobuf's JSON reader wants base64."""
    resource_logs = _first(value, _RESOURCE_LOGS)
    if not isinstance(resource_logs, list):
        return
    for resource in resource_logs:
        scopes = _first(resource, _SCOPE_LOGS) if isinstance(resource, dict) else None
        for scope in scopes if isinstance(scopes, list) else ():
            records = _first(scope, _LOG_RECORDS) if isinstance(scope, dict) else None
            for record in records if isinstance(records, list) else ():
                if not isinstance(record, dict):
                    continue
                for name in _ID_FIELDS:
                    raw = record.get(name)
                    if not isinstance(raw, str):
                        continue
                    try:
                        record[name] = base64.b64encode(bytes.fromhex(raw)).decode()
                    except ValueError:
                        raise ApiError(
                            400, "malformed_body", f"{name} {raw[:40]!r} is not hex"
                        ) from None


def decode_json(value: dict[str, Any]) -> ExportLogsServiceRequest:
    _hex_ids_to_base64(value)
    message = ExportLogsServiceRequest()
    try:
        json_format.ParseDict(
            value, message, ignore_unknown_fields=True, max_recursion_depth=MAX_JSON_NESTING
        )
    except (json_format.ParseError, ValueError, TypeError, binascii.Error) as exc:
        raise ApiError(
            400,
            "malformed_body",
            f"the body is not an OTLP/JSON ExportLogsServiceRequest: {str(exc)[:300]}",
        ) from None
    return message


def response_json(result: ExportResult) -> dict[str, Any]:
    as_dict: dict[str, Any] = json_format.MessageToDict(result.response())
    return as_dict


def _error_message(errors: list[dict[str, Any]], warnings: Counter[str]) -> str:
    parts = []
    if errors:
        named = []
        for error in errors[:MAX_NAMED_ERRORS]:
            reasons = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
                for e in error["errors"]
            )
            named.append(f"record {error['index']}: {reasons}")
        more = f" (and {len(errors) - MAX_NAMED_ERRORS} more)" if len(errors) > len(named) else ""
        parts.append(f"{len(errors)} log records rejected: " + " | ".join(named) + more)
    for warning, count in sorted(warnings.items()):
        parts.append(f"{count} log records accepted with {warning}")
    return "; ".join(parts)


async def export(
    request: ExportLogsServiceRequest,
    gateway: Gateway,
    key_id: str,
    *,
    traceparent: str | None,
) -> ExportResult:
    count = count_records(request)
    if count == 0:
        return ExportResult(0, 0, "")
    limit = gateway.body_limits.max_batch_events
    if count > limit:
        metrics.EVENTS_REJECTED.labels("batch_too_large").inc()
        raise ApiError(
            413,
            "batch_too_large",
            f"the request has {count} log records; at most {limit} per request "
            "(LOGRIVER_INGEST_MAX_BATCH_EVENTS): lower the exporter's batch size",
        )

    await take_rate(gateway, key_id, count, noun="log records")

    limits = gateway.validation_context.get("limits")
    mapped = map_request(request, limits if isinstance(limits, EventLimits) else EventLimits())
    fill_trace_context(mapped.items, parse_traceparent(traceparent))
    batch = await admit_and_publish(gateway, mapped.items)
    return ExportResult(
        len(batch.records), len(batch.errors), _error_message(batch.errors, mapped.warnings)
    )
