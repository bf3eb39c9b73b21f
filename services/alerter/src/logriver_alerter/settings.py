from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logriver_common.settings import KafkaSettings, MongoSettings, PostgresSettings, ServiceSettings


class AlerterSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOGRIVER_ALERTER_", extra="ignore", populate_by_name=True
    )

    port: int = 8003
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
