from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logriver_common.settings import KafkaSettings, MongoSettings, ServiceSettings


class WriterSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOGRIVER_WRITER_", extra="ignore", populate_by_name=True
    )

    port: int = 8004
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
