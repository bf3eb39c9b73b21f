from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logriver_common.settings import MongoSettings, PostgresSettings, RedisSettings, ServiceSettings


class QuerySettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOGRIVER_QUERY_", extra="ignore", populate_by_name=True
    )

    port: int = 8001
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
