"""The OpenAPI document: the route reads its body itself (streamed, size-bounded),
so FastAPI cannot infer the request body; it is described here instead."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from logriver_common.event import LogEvent
from logriver_ingest.settings import IngestSettings

_REF = "#/components/schemas/{model}"


def request_body(settings: IngestSettings) -> dict[str, Any]:
    event = {"$ref": _REF.format(model="LogEvent")}
    batch = {"type": "array", "items": event, "minItems": 1, "maxItems": settings.max_batch_events}
    return {
        "required": True,
        "description": (
            f"At most {settings.max_body_bytes} bytes on the wire and "
            f"{settings.max_decompressed_bytes} bytes after gzip; at most "
            f"{settings.max_batch_events} events. `received_at` is set by the gateway; a "
            "client-sent value is replaced."
        ),
        "content": {
            "application/json": {"schema": {"oneOf": [event, batch]}},
            "application/x-ndjson": {
                "schema": {"type": "string"},
                "example": '{"service":"checkout","message":"started"}\n'
                '{"service":"checkout","level":"warn","message":"slow"}\n',
            },
        },
    }


def install_openapi(app: FastAPI, settings: IngestSettings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        event_schema = LogEvent.model_json_schema(ref_template=_REF)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(event_schema.pop("$defs", {}))
        components["LogEvent"] = event_schema
        schema["paths"]["/v1/logs"]["post"]["requestBody"] = request_body(settings)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
