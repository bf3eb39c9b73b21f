"""Settings guards and the OpenAPI description (no network: the lifespan is not run)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from logriver_common.settings import TelemetrySettings
from logriver_ingest.app import create_app
from logriver_ingest.settings import IngestSettings


def test_burst_smaller_than_a_batch_is_refused() -> None:
    with pytest.raises(ValidationError, match="RATE_LIMIT_BURST_EVENTS"):
        IngestSettings(max_batch_events=1_000, rate_limit_burst_events=999)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGRIVER_INGEST_MAX_BATCH_EVENTS", "10")
    monkeypatch.setenv("LOGRIVER_INGEST_MASKED_METADATA_KEYS", '["pin"]')
    settings = IngestSettings()
    assert settings.max_batch_events == 10
    assert settings.masked_metadata_keys == ["pin"]


def test_openapi_documents_body_limits_and_every_status() -> None:
    settings = IngestSettings(max_batch_events=777, telemetry=TelemetrySettings(enabled=False))
    spec = create_app(settings).openapi()
    post = spec["paths"]["/v1/logs"]["post"]
    content = post["requestBody"]["content"]
    assert set(content) == {"application/json", "application/x-ndjson"}
    one_of = content["application/json"]["schema"]["oneOf"]
    assert one_of[1]["maxItems"] == 777
    assert set(post["responses"]) >= {
        "202", "207", "400", "401", "403", "413", "415", "422", "429", "503"
    }  # fmt: skip
    event = spec["components"]["schemas"]["LogEvent"]
    assert {"service", "message", "metadata", "trace_id", "id"} <= set(event["properties"])
    assert "Level" in spec["components"]["schemas"]
    assert "LOGRIVER_INGEST_MAX_BATCH_EVENTS" in post["responses"]["413"]["description"]
