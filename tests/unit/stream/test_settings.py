from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from logriver_common.settings import PostgresSettings
from logriver_common.stream_tokens import StreamTokenSettings
from logriver_stream.settings import StreamSettings


def test_defaults_are_consistent() -> None:
    settings = StreamSettings()
    assert settings.port == 8002
    assert settings.queue_size >= settings.fetch_max_records


def test_queue_must_hold_one_fetch() -> None:
    with pytest.raises(ValidationError, match="QUEUE_SIZE"):
        StreamSettings(queue_size=100, fetch_max_records=500)


def test_production_refuses_the_local_token_secret() -> None:
    postgres = PostgresSettings(dsn=SecretStr("postgresql://u:p@db/x"))
    with pytest.raises(ValidationError, match="TOKEN_SECRET"):
        StreamSettings(mode="production", postgres=postgres)
    ok = StreamSettings(
        mode="production", postgres=postgres, tokens=StreamTokenSettings(secret=SecretStr("s"))
    )
    assert ok.mode == "production"
