from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logriver_common.settings import KafkaSettings, ServiceSettings


class StreamSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOGRIVER_STREAM_", extra="ignore", populate_by_name=True
    )

    port: int = 8002
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
