from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logriver_common.settings import KafkaSettings, PostgresSettings, RedisSettings, ServiceSettings


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOGRIVER_INGEST_", extra="ignore", populate_by_name=True
    )

    port: int = 8000
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
