"""The app builds without connections and documents the SSE route (/docs must work)."""

from __future__ import annotations

from logriver_common.settings import TelemetrySettings
from logriver_stream.app import create_app
from logriver_stream.settings import StreamSettings


def test_openapi_documents_the_stream_routes() -> None:
    app = create_app(StreamSettings(telemetry=TelemetrySettings(enabled=False)))
    spec = app.openapi()
    stream = spec["paths"]["/v1/stream"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert {"400", "401", "403", "429"} <= set(stream["responses"])
