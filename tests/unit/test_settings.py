from __future__ import annotations

import pytest
from pydantic import ValidationError

from logriver_ingest.settings import IngestSettings
from logriver_query.settings import LOCAL_CURSOR_SECRET, QuerySettings
from logriver_stream.settings import StreamSettings
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


def test_one_production_check_covers_every_local_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cursor secret, stream-token secret (nested, in query and stream), empty secrets."""
    for name, value in {
        "LOGRIVER_MODE": "production",
        "LOGRIVER_MONGO_URI": "mongodb://db/",
        "LOGRIVER_REDIS_URL": "redis://r/0",
        "LOGRIVER_POSTGRES_DSN": "postgresql://u:p@pg/db",
        "LOGRIVER_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "LOGRIVER_QUERY_CURSOR_SECRET": "a-real-cursor-secret",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match="LOGRIVER_STREAM_TOKEN_SECRET"):
        QuerySettings()
    with pytest.raises(ValidationError, match="LOGRIVER_STREAM_TOKEN_SECRET"):
        StreamSettings()
    monkeypatch.setenv("LOGRIVER_STREAM_TOKEN_SECRET", "")
    with pytest.raises(ValidationError, match="LOGRIVER_STREAM_TOKEN_SECRET"):
        QuerySettings()
    monkeypatch.setenv("LOGRIVER_STREAM_TOKEN_SECRET", "a-real-token-secret")
    assert QuerySettings().stream_tokens.secret.get_secret_value() == "a-real-token-secret"
    assert StreamSettings().mode == "production"
    monkeypatch.setenv("LOGRIVER_QUERY_CURSOR_SECRET", "")
    with pytest.raises(ValidationError, match="LOGRIVER_QUERY_CURSOR_SECRET"):
        QuerySettings()


def test_local_mode_keeps_the_local_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOGRIVER_MODE", raising=False)
    assert QuerySettings().cursor_secret.get_secret_value() == LOCAL_CURSOR_SECRET
