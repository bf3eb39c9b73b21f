"""The settings walk that the deploy tests rely on, on settings classes made for it."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tests.unit.deploy import envvars


class _Inner(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="X_INNER_")

    url: SecretStr = SecretStr("redis://127.0.0.1")
    size: int = 3


class _Outer(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="X_OUTER_", populate_by_name=True)

    mode: str = Field(default="local", validation_alias="X_MODE")
    level: str = Field(default="INFO", validation_alias=AliasChoices("X_LEVEL", "X_LOG_LEVEL"))
    token_secret: str = "s"
    inner: _Inner = Field(default_factory=_Inner)
    maybe: _Inner | None = None
    port: int = 1


def test_walk_follows_prefixes_aliases_and_nested_settings() -> None:
    found = {v.name: v for v in envvars.walk(_Outer)}
    assert set(found) == {
        "X_MODE",
        "X_LEVEL",
        "X_OUTER_TOKEN_SECRET",
        "X_INNER_URL",
        "X_INNER_SIZE",
        "X_OUTER_PORT",
    }
    assert found["X_LEVEL"].aliases == ("X_LOG_LEVEL",)
    assert found["X_INNER_URL"].secret  # typed SecretStr
    assert found["X_OUTER_TOKEN_SECRET"].secret  # named *_SECRET
    assert not found["X_OUTER_PORT"].secret


def test_real_services_read_their_connections_and_bind_settings() -> None:
    for service in envvars.SERVICES:
        required = envvars.required(service)
        prefix = f"LOGRIVER_{service.upper()}_"
        assert {"LOGRIVER_MODE", f"{prefix}HOST", f"{prefix}PORT"} <= required
        assert "LOGRIVER_OTEL_ENDPOINT" in required
        assert envvars.secrets(service) - set(envvars.OPTIONAL_SECRETS) <= required
    assert "LOGRIVER_KAFKA_SASL_PASSWORD" in envvars.secrets("writer")
    assert "LOGRIVER_KAFKA_SASL_PASSWORD" not in envvars.required("writer")
    assert "LOGRIVER_STREAM_TOKEN_SECRET" in envvars.required("stream")
    assert "LOGRIVER_KAFKA_BOOTSTRAP_SERVERS" in envvars.required("writer")
    assert "LOGRIVER_MONGO_URI" in envvars.secrets("writer")
