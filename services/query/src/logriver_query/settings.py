"""The query service's settings (``LOGRIVER_QUERY_*``).

Every limit that protects the database is a setting, so an operator can widen
or tighten it without a release; the defaults suit the local stack.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from logriver_common.settings import (
    MongoSettings,
    PostgresSettings,
    RedisSettings,
    ServiceSettings,
    local_secret,
)
from logriver_common.stream_tokens import StreamTokenSettings

# Signs pagination cursors. Local stack only: production refuses to start with it.
LOCAL_CURSOR_SECRET = "logriver-local-cursor-secret"  # noqa: S105


class QuerySettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOGRIVER_QUERY_", extra="ignore", populate_by_name=True
    )

    port: int = 8001
    # Python's own: a request's objects die with it, and at 50,000 the cached answers
    # cost a little more CPU (tune_garbage_collector in logriver_common/app.py).
    gc_young_threshold: int = Field(
        default=700, ge=100, le=10_000_000, validation_alias="LOGRIVER_GC_YOUNG_THRESHOLD"
    )
    # Worker processes on the port (one per core it may use): an answer's cost is mostly
    # this process's CPU (HTTP, BSON, JSON), so one process serves one core's worth.
    workers: int = Field(default=1, ge=1, le=64)
    # On average a response closes its connection after this many requests, so that
    # clients spread again over workers and replicas
    # (logriver_common/web/connection_recycling.py). 0: never.
    requests_per_connection: int = Field(default=100, ge=0)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)

    cursor_secret: SecretStr = local_secret(LOCAL_CURSOR_SECRET)
    # Issues the console's stream tokens (LOGRIVER_STREAM_TOKEN_*, shared with the stream).
    stream_tokens: StreamTokenSettings = Field(default_factory=StreamTokenSettings)

    # Reads: secondaries may lag at most this much (90 s is MongoDB's minimum).
    max_staleness_seconds: int = Field(default=90, ge=90)
    max_time_ms: int = Field(default=5_000, ge=10)

    # Result and range caps.
    default_page_size: int = Field(default=100, ge=1)
    max_page_size: int = Field(default=1_000, ge=1)
    default_range_seconds: int = Field(default=3_600, ge=1)
    max_range_days: int = Field(default=31, ge=1)
    # A text search reads time slices within a budget per page (see docs/query.md), so it
    # may cover the whole range; an operator can still cap it.
    max_text_range_hours: int = Field(default=31 * 24, ge=1)
    max_trace_events: int = Field(default=5_000, ge=1)
    max_histogram_buckets: int = Field(default=1_000, ge=10)
    max_query_length: int = Field(default=256, ge=1)

    # Aggregation cache and its single-flight lock.
    cache_ttl_seconds: float = Field(default=10.0, gt=0)
    cache_lock_ms: int = Field(default=10_000, ge=100)
    # Hot answers (hot_answers.py): how long this process answers a repeat of a cached
    # request before routing (never past its Redis entry; 0 turns it off), in what memory.
    hot_answer_seconds: float = Field(default=2.0, ge=0, le=60)
    hot_answer_max_bytes: int = Field(default=32 * 2**20, ge=0)

    # Histograms that rollups cannot answer (host, env, trace_id, q, meta.*) scan the events
    # newest first for at most this long, then answer `truncated: true`.
    scan_budget_ms: int = Field(default=2_000, ge=10)
    # A substring search (`q`) scans time slices newest first for at most this long per page,
    # then answers the page it has with a cursor that continues where the scan stopped.
    text_page_budget_ms: int = Field(default=800, ge=10)

    slow_query_ms: float = Field(default=200.0, ge=0)

    jaeger_ui_url: str = "http://127.0.0.1:16686"
    stream_base_url: str = "http://127.0.0.1:8002"
