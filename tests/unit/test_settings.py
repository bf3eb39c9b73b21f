from __future__ import annotations

import pytest
from pydantic import ValidationError

from logriver_ingest.settings import IngestSettings
from logriver_writer.settings import WriterSettings


def test_defaults_point_at_the_local_stack() -> None:
    settings = IngestSettings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.port == 8000
    assert settings.mode == "local"


def test_shared_connection_settings_come_from_one_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGRIVER_KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9092")
    monkeypatch.setenv("LOGRIVER_WRITER_PORT", "9999")
    assert WriterSettings().kafka.bootstrap_servers == "kafka-0:9092"
    assert IngestSettings().kafka.bootstrap_servers == "kafka-0:9092"
    assert WriterSettings().port == 9999
    assert IngestSettings().port == 8000


def test_production_refuses_local_default_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGRIVER_MODE", "production")
    with pytest.raises(ValidationError, match="LOGRIVER_POSTGRES_DSN"):
        IngestSettings()
    monkeypatch.setenv("LOGRIVER_POSTGRES_DSN", "postgresql://u:p@db/logriver")
    monkeypatch.setenv("LOGRIVER_REDIS_URL", "redis://cache:6379/0")
    assert IngestSettings().mode == "production"
