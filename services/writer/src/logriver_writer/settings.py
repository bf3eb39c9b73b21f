"""The writer's settings (env prefix ``LOGRIVER_WRITER_``), composed with the shared ones."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logriver_common.event import EventLimits
from logriver_common.retention import RetentionPolicy, retention_field
from logriver_common.settings import KafkaSettings, MongoSettings, ServiceSettings


class WriterSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOGRIVER_WRITER_", extra="ignore", populate_by_name=True
    )

    port: int = 8004
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)

    group_id: str = Field(default="writer", min_length=1)
    # How long the group waits for a crashed writer before giving its partitions to another.
    session_timeout_ms: int = Field(default=10_000, ge=6_000)

    # A batch is written when it holds this many events or its oldest event waited this long.
    batch_max_events: int = Field(default=5_000, ge=1, le=100_000)
    batch_max_wait_ms: int = Field(default=200, ge=1)

    # Records bigger than this are dead-lettered before parsing (too large to store).
    max_record_bytes: int = Field(default=256 * 1024, ge=1024)
    max_message_bytes: int = Field(default=32 * 1024, ge=1)

    # Stop consuming when more than `dlq_ratio_limit` of the last `dlq_ratio_window` records
    # were dead-lettered (once at least `dlq_ratio_min_records` were seen): a bad producer
    # or a bad deploy must not empty a topic into the DLQ.
    dlq_ratio_limit: float = Field(default=0.9, gt=0.0, le=1.0)
    dlq_ratio_window: int = Field(default=10_000, ge=1)
    dlq_ratio_min_records: int = Field(default=1_000, ge=1)

    # MongoDB errors other than duplicates are retried with exponential backoff up to this cap.
    retry_initial_backoff_s: float = Field(default=0.1, gt=0.0)
    retry_max_backoff_s: float = Field(default=5.0, gt=0.0)

    # SIGTERM: the in-flight batch gets this long to be written and committed.
    shutdown_timeout_s: float = Field(default=10.0, gt=0.0)
    # How often consumer lag is read from the broker's end offsets.
    lag_interval_s: float = Field(default=5.0, gt=0.0)

    retention: RetentionPolicy = retention_field()

    def event_limits(self) -> EventLimits:
        return EventLimits(max_message_bytes=self.max_message_bytes)
