"""OTLP/gRPC: ``opentelemetry.proto.collector.logs.v1.LogsService/Export`` on its own port.

It runs in the gateway's process and event loop (started and stopped by the
app's lifespan) and hands requests to the same export path as OTLP/HTTP. The
API key comes in the ``authorization: Bearer <key>`` or ``x-api-key`` metadata.

Status codes, as the OTLP spec says: INVALID_ARGUMENT for an undecodable or
oversized request (not retried), UNAUTHENTICATED / PERMISSION_DENIED for the
key, RESOURCE_EXHAUSTED (rate limit) and UNAVAILABLE (Kafka) with a
``google.rpc.RetryInfo`` delay in the trailers, so exporters retry after it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import grpc  # type: ignore[import-untyped]
from opentelemetry import propagate, trace
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from logriver_common.auth import ApiKeyStore, Scope
from logriver_common.web.errors import ApiError
from logriver_ingest import metrics
from logriver_ingest.otlp_export import decode_protobuf, export

if TYPE_CHECKING:
    from logriver_ingest.routes import Gateway

log = logging.getLogger(__name__)

SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
METHOD = f"/{SERVICE}/Export"
RETRY_INFO_KEY = "google.rpc.retryinfo-bin"
STOP_GRACE_S = 5.0
MAX_KEY_CHARS = 256
MAX_CONNECTION_AGE_MS = 300_000
MAX_CONNECTION_AGE_GRACE_MS = 30_000
_tracer = trace.get_tracer(__name__)


class _Refused(Exception):
    def __init__(self, code: Any, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.retry_after_s = retry_after_s


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def retry_info(seconds: int) -> bytes:
    """``google.rpc.RetryInfo{retry_delay: {seconds}}`` in protobuf wire format.

    Written by hand: two fields do not justify depending on googleapis-common-protos.
    """
    duration = b"\x08" + _varint(seconds)  # Duration.seconds, field 1, varint
    return b"\x0a" + _varint(len(duration)) + duration  # RetryInfo.retry_delay, field 1


def status_for(error: ApiError) -> _Refused:
    """The gRPC status for an error the HTTP path would answer with ``error.status_code``."""
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)[:1000]
    retry_after = (error.headers or {}).get("Retry-After")
    seconds = int(retry_after) if retry_after and retry_after.isdigit() else None
    status = error.status_code
    if status == 401:
        return _Refused(grpc.StatusCode.UNAUTHENTICATED, detail)
    if status == 403:
        return _Refused(grpc.StatusCode.PERMISSION_DENIED, detail)
    if status == 429:
        return _Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, detail, seconds or 1)
    if status >= 500:
        return _Refused(grpc.StatusCode.UNAVAILABLE, detail, seconds or 1)
    # 400 (undecodable), 413 (too many records): the same request will never succeed.
    return _Refused(grpc.StatusCode.INVALID_ARGUMENT, detail)


def _presented_key(metadata: dict[str, str]) -> str | None:
    header = metadata.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = metadata.get("x-api-key", "").strip()
    return api_key or None


def _metadata(pairs: Iterable[tuple[str, Any]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in pairs or ():
        if isinstance(value, str) and key not in out:  # -bin metadata is bytes: not ours
            out[key.lower()] = value
    return out


class LogsService:
    def __init__(self, gateway: Gateway, keys: ApiKeyStore) -> None:
        self._gateway = gateway
        self._keys = keys

    async def _authenticate(self, metadata: dict[str, str]) -> str:
        plaintext = _presented_key(metadata)
        if plaintext is None:
            raise _Refused(
                grpc.StatusCode.UNAUTHENTICATED,
                "send an API key as `authorization: Bearer <key>` or `x-api-key: <key>` metadata",
            )
        key = await self._keys.lookup(plaintext) if len(plaintext) <= MAX_KEY_CHARS else None
        if key is None:
            raise _Refused(grpc.StatusCode.UNAUTHENTICATED, "invalid or revoked API key")
        if Scope.INGEST not in key.scopes:
            raise _Refused(
                grpc.StatusCode.PERMISSION_DENIED, f"this API key lacks the `{Scope.INGEST}` scope"
            )
        return key.id

    async def export(self, body: bytes, context: Any) -> bytes:
        metadata = _metadata(context.invocation_metadata())
        refused: _Refused | None = None
        with _tracer.start_as_current_span(
            METHOD.lstrip("/"),
            context=propagate.extract(metadata),
            kind=trace.SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": "Export"},
        ) as span:
            try:
                key_id = await self._authenticate(metadata)
                try:
                    message = decode_protobuf(body)
                except ApiError as exc:
                    metrics.EVENTS_REJECTED.labels(exc.error).inc()
                    raise
                result = await export(
                    message, self._gateway, key_id, traceparent=metadata.get("traceparent")
                )
            except ApiError as exc:
                refused = status_for(exc)
            except _Refused as exc:
                refused = exc
            if refused is not None:
                span.set_attribute("rpc.grpc.status_code", refused.code.value[0])
        if refused is not None:
            metrics.OTLP_REQUESTS.labels("grpc", refused.code.name).inc()
            trailers: tuple[tuple[str, bytes], ...] = ()
            if refused.retry_after_s is not None:
                trailers = ((RETRY_INFO_KEY, retry_info(refused.retry_after_s)),)
            await context.abort(refused.code, refused.detail, trailing_metadata=trailers)
            return b""  # not reached: abort() raises
        metrics.OTLP_REQUESTS.labels("grpc", "OK").inc()
        response: ExportLogsServiceResponse = result.response()
        serialized: bytes = response.SerializeToString()
        return serialized


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


async def start_server(
    gateway: Gateway,
    keys: ApiKeyStore,
    *,
    host: str,
    port: int,
    max_message_bytes: int,
    shared: bool = False,
) -> Any:
    """A started ``grpc.aio.Server``; start-up fails if the port is taken.

    ``shared``: the gateway's workers all listen on the port (SO_REUSEPORT, the kernel
    spreads connections); then another process on the port is not detected.
    """
    service = LogsService(gateway, keys)
    server = grpc.aio.server(
        options=[
            # Without this, a second process on the same port would silently share it.
            ("grpc.so_reuseport", 1 if shared else 0),
            # A client reconnects after 5 minutes (GOAWAY, then 30 s for calls in flight),
            # so its connection is placed again: on another worker, another replica.
            ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
            ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS),
            # Decompressed size; beyond it gRPC answers RESOURCE_EXHAUSTED itself.
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
    )
    # Raw bytes in: a body that is not protobuf is our INVALID_ARGUMENT, not gRPC's INTERNAL.
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                service.export, request_deserializer=None, response_serializer=None
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    address = _address(host, port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise RuntimeError(
            f"OTLP/gRPC cannot listen on {address}: {exc} (LOGRIVER_INGEST_GRPC_PORT)"
        ) from None
    if not bound:
        raise RuntimeError(f"OTLP/gRPC cannot listen on {address} (LOGRIVER_INGEST_GRPC_PORT)")
    await server.start()
    log.info("OTLP/gRPC listening", extra={"address": address})
    return server


async def stop_server(server: Any) -> None:
    await server.stop(STOP_GRACE_S)
