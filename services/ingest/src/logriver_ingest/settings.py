"""Ingest gateway settings (env prefix ``LOGRIVER_INGEST_``).

Every limit the gateway enforces is here, so the OpenAPI description and the
docs can name the variable that changes it.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import SettingsConfigDict

from logriver_common.event import EventLimits
from logriver_common.retention import RetentionPolicy, retention_field
from logriver_common.settings import KafkaSettings, PostgresSettings, RedisSettings, ServiceSettings


class RedactionRule(BaseModel):
    """A regex whose matches are replaced before an event leaves the gateway."""

    name: str = Field(pattern=r"^[a-z0-9_]{1,32}$")
    pattern: str
    replacement: str = "[REDACTED]"
    # Mask a match only if its digits pass the Luhn check (card numbers, not any long number).
    luhn: bool = False
    # Speed: the regex runs only when one of these substrings (case-insensitive) occurs in
    # the text. A scan for a literal costs a fraction of a regex pass. Empty: always run.
    hints: list[str] = Field(default_factory=list)


# Defaults: the secrets people most often paste into log lines. Each rule keeps
# enough context (the key name, the scheme) that the redacted line still reads.
DEFAULT_REDACTION_RULES = [
    RedactionRule(
        name="bearer_token",
        pattern=r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]{8,}=*",
        replacement=r"\1 [REDACTED]",
        hints=["bearer"],
    ),
    RedactionRule(
        name="password",
        pattern=(
            r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)"
            r"(\"?\s*[:=]\s*\"?)[^\s\"',;&]+"
        ),
        replacement=r"\1\2[REDACTED]",
        hints=["pass", "pwd", "secret", "token", "key"],
    ),
    RedactionRule(
        name="api_key",
        # logriver keys (lr_<prefix>_<secret>), Stripe-style sk_/pk_/rk_ keys, AWS access key ids.
        pattern=(
            r"\b(?:lr_[A-Za-z0-9]{4,16}_[A-Za-z0-9_\-]{16,}"
            r"|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"
            r"|AKIA[0-9A-Z]{16})\b"
        ),
        hints=["lr_", "sk_", "pk_", "rk_", "akia"],
    ),
    RedactionRule(
        # Candidate digit runs; the redactor masks only those that pass the Luhn check.
        name="card_number",
        pattern=r"\b(?:\d[ -]?){12,18}\d\b",
        luhn=True,
    ),
    RedactionRule(
        name="email",
        pattern=r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b",
        hints=["@"],
    ),
]

DEFAULT_MASKED_KEYS = [
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credentials",
    "private_key",
]


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOGRIVER_INGEST_", extra="ignore", populate_by_name=True
    )

    port: int = 8000
    # Worker processes serving port (and grpc_port) together, each with its own producer:
    # the gateway's CPU is per event, so one process uses one core. The kernel spreads
    # connections over the workers; metrics are summed over them (docs/ingest.md).
    workers: int = Field(default=1, ge=1, le=64)
    # About this many bytes of request bodies per client connection, then a response
    # closes it, so connections spread again over workers and replicas (why:
    # logriver_common/web/connection_recycling.py). 8 MiB: every ~27 requests of
    # 1,000 events. 0: never.
    bytes_per_connection: int = Field(default=8 * 1024 * 1024, ge=0)
    # OTLP/gRPC (LogsService/Export) listens on host:grpc_port; 0 turns it off. Not 4317:
    # that is Jaeger's OTLP port in the local stack (4318 its OTLP/HTTP).
    grpc_port: int = Field(default=4319, ge=0, le=65535)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)

    # Request limits: headers checked first (431), the body while it streams in.
    max_header_bytes: int = Field(default=32 * 1024, ge=4096)
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_decompressed_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_batch_events: int = Field(default=5_000, ge=1)

    # Event limits (passed to LogEvent validation).
    max_message_bytes: int = Field(default=32 * 1024, ge=64)
    max_future_skew_s: float = Field(default=300.0, ge=0)
    max_metadata_depth: int = Field(default=5, ge=1)
    max_metadata_keys: int = Field(default=100, ge=1)
    max_metadata_bytes: int = Field(default=16 * 1024, ge=64)

    # Publishing: a request never waits longer than this for Kafka's acks.
    publish_deadline_s: float = Field(default=5.0, gt=0)
    # Events accepted but not yet acked, across all requests; beyond it: 503 at once.
    max_in_flight_events: int = Field(default=100_000, ge=1)
    unavailable_retry_after_s: int = Field(default=5, ge=1)
    linger_ms: int = Field(default=5, ge=0)
    # At least 128 KiB: one maximal event (message + metadata caps) must fit in a batch.
    max_batch_size_bytes: int = Field(default=512 * 1024, ge=128 * 1024)
    # zstd, not lz4: aiokafka compresses lz4 at level 9 (LZ4 HC), which cost the gateway
    # ~1.7 us per event in a 1,000-event batch; zstd (level 3) costs ~0.3 us and packs
    # JSON events about twice as tight (docs/performance.md).
    compression: str = Field(default="zstd", pattern=r"^(lz4|zstd|gzip|snappy|none)$")

    # Token bucket per API key, counted in events.
    rate_limit_enabled: bool = True
    rate_limit_events_per_s: float = Field(default=100_000.0, gt=0)
    rate_limit_burst_events: int = Field(default=200_000, ge=1)

    # Redaction.
    redaction_rules: list[RedactionRule] = Field(
        default_factory=lambda: list(DEFAULT_REDACTION_RULES)
    )
    masked_metadata_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_MASKED_KEYS))

    # No key is trusted from a cache for longer than 5 s (revocation takes effect within 5 s).
    api_key_cache_ttl_s: float = Field(default=5.0, ge=0, le=5.0)

    # The relay (`python -m logriver_ingest relay`): raw topic -> the same door -> logs.v1.
    relay_port: int = Field(default=8005, ge=1, le=65535)
    relay_group_id: str = Field(default="relay", min_length=1)
    relay_max_record_bytes: int = Field(default=256 * 1024, ge=1024)
    relay_fetch_max_records: int = Field(default=1_000, ge=1, le=50_000)
    retry_initial_backoff_s: float = Field(default=0.1, gt=0.0)
    retry_max_backoff_s: float = Field(default=5.0, gt=0.0)

    # The door refuses what this policy would delete at once (also the writer's policy).
    retention: RetentionPolicy = retention_field()

    @model_validator(mode="after")
    def _burst_fits_a_batch(self) -> IngestSettings:
        # Otherwise a full-size batch could never be admitted and would get 429 forever.
        if self.rate_limit_burst_events < self.max_batch_events:
            raise ValueError(
                "LOGRIVER_INGEST_RATE_LIMIT_BURST_EVENTS must be at least "
                "LOGRIVER_INGEST_MAX_BATCH_EVENTS"
            )
        return self

    def event_limits(self) -> EventLimits:
        return EventLimits(
            max_message_bytes=self.max_message_bytes,
            max_future_skew=timedelta(seconds=self.max_future_skew_s),
            max_metadata_depth=self.max_metadata_depth,
            max_metadata_keys=self.max_metadata_keys,
            max_metadata_bytes=self.max_metadata_bytes,
        )
