"""The stream service's settings (``LOGRIVER_STREAM_*``).

Every bound that protects the instance (queue sizes, subscriber limits, regex
cost, replay concurrency) is a setting so an operator can tune it without a
release; the defaults suit the local stack.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from logriver_common.settings import KafkaSettings, PostgresSettings, ServiceSettings
from logriver_common.stream_tokens import StreamTokenSettings


class OverflowPolicy(StrEnum):
    """What happens when a subscriber's queue is full."""

    SKIP = "skip"  # drop the oldest queued events, tell the client how many (`dropped`)
    CLOSE = "close"  # end the stream with a `slow_consumer` error


class StreamSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOGRIVER_STREAM_", extra="ignore", populate_by_name=True
    )

    port: int = 8002
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    tokens: StreamTokenSettings = Field(default_factory=StreamTokenSettings)

    # Origins allowed to open streams from a browser (the web console's origin).
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])

    # Wire behaviour.
    heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    retry_ms: int = Field(default=2_000, ge=100, le=600_000)
    send_timeout_seconds: float = Field(default=30.0, gt=0)

    # Slow consumers: a bounded queue per subscriber and what to do when it is full.
    queue_size: int = Field(default=2_000, ge=10)
    overflow: OverflowPolicy = OverflowPolicy.SKIP

    # Admission.
    max_subscribers: int = Field(default=5_000, ge=1)
    max_subscribers_per_key: int = Field(default=200, ge=1)

    # Source and replay.
    fetch_max_records: int = Field(default=500, ge=1)
    # The live source's fetches: the broker answers once it holds this many bytes, or
    # when the wait is over. Every fetch wakes each client it has events for (one socket
    # write each), so fewer, fuller fetches cut the CPU per delivered event under load;
    # the wait bounds the latency this adds when traffic is light. See docs/performance.md.
    fetch_min_bytes: int = Field(default=64 * 1024, ge=1, le=16 << 20)
    fetch_max_wait_ms: int = Field(default=50, ge=0, le=1_000)
    max_concurrent_replays: int = Field(default=16, ge=1)
    max_since_seconds: int = Field(default=86_400, ge=1)

    # User regexes (RE2): bounded length, compile memory and program size (see
    # filters.py), and a per-key cap and CPU budget (see budget.py).
    regex_max_length: int = Field(default=256, ge=1, le=4096)
    regex_max_mem: int = Field(default=1 << 20, ge=64 * 1024, le=64 << 20)
    regex_max_program_size: int = Field(default=1_000, ge=10, le=100_000)
    regex_max_per_key: int = Field(default=10, ge=1)
    regex_budget_ms: float = Field(default=50.0, gt=0)
    regex_budget_window_seconds: float = Field(default=1.0, gt=0, le=60)

    # Revocation: how often the keys of open streams are rechecked in PostgreSQL.
    # A revoked key's streams end within this (plus one query), well inside 5 s.
    key_recheck_seconds: float = Field(default=2.0, gt=0, le=2.0)

    @model_validator(mode="after")
    def _queue_holds_a_fetch(self) -> StreamSettings:
        # One source fetch is handed to subscribers at once; a queue smaller than
        # a fetch would drop events for clients that are not slow at all.
        if self.queue_size < self.fetch_max_records:
            raise ValueError(
                f"LOGRIVER_STREAM_QUEUE_SIZE ({self.queue_size}) must be at least "
                f"LOGRIVER_STREAM_FETCH_MAX_RECORDS ({self.fetch_max_records})"
            )
        return self
