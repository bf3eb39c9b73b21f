from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from logriver_alerter.egress import EgressPolicy, parse_allow
from logriver_common.settings import KafkaSettings, MongoSettings, PostgresSettings, ServiceSettings


class AlerterSettings(ServiceSettings):
    """``LOGRIVER_ALERTER_*``: evaluation timing, delivery policy and link targets."""

    model_config = SettingsConfigDict(
        env_prefix="LOGRIVER_ALERTER_", extra="ignore", populate_by_name=True
    )

    port: int = 8003
    group_id: str = "alerter"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)

    # Evaluation. Windows end `lateness_s` behind the clock so events that arrive
    # up to that late still land in the window they belong to.
    eval_interval_s: float = Field(default=1.0, gt=0, le=60)
    lateness_s: float = Field(default=2.0, ge=0, le=300)
    rules_refresh_s: float = Field(default=5.0, gt=0, le=300)
    commit_interval_s: float = Field(default=1.0, gt=0, le=60)
    # How soon the group notices a dead instance and hands its partitions on.
    session_timeout_ms: int = Field(default=10_000, ge=6_000, le=300_000)

    # Links in notifications: the console's search and its trace view (which links on to
    # a Jaeger UI where one is configured on the query service).
    console_base_url: str = "http://127.0.0.1:8001"

    # Delivery: one bounded lane per channel so a slow receiver only slows itself.
    delivery_queue_size: int = Field(default=1000, ge=1)
    delivery_timeout_s: float = Field(default=5.0, gt=0, le=120)
    delivery_max_attempts: int = Field(default=6, ge=1, le=50)
    delivery_backoff_s: float = Field(default=1.0, gt=0, le=60)
    delivery_backoff_max_s: float = Field(default=30.0, gt=0, le=600)
    # A notification claimed by an instance that died is retried after its lease ends.
    delivery_lease_s: float = Field(default=120.0, gt=0)
    outbox_sweep_s: float = Field(default=5.0, gt=0, le=300)

    # Egress: deliveries go to public internet addresses only, unless admitted here.
    # A comma-separated list of CIDRs, IP addresses, host names and `.suffix` domains.
    egress_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Loopback receivers; unset means "only in local mode" (the tests' receivers).
    egress_allow_loopback: bool | None = None

    @field_validator("egress_allow", mode="before")
    @classmethod
    def _split_allow(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            parse_allow(str(v) for v in value)  # refuse a bad entry at startup
        return value

    def egress_policy(self) -> EgressPolicy:
        loopback = self.egress_allow_loopback
        if loopback is None:
            loopback = self.mode == "local"
        return EgressPolicy.from_settings(self.egress_allow, allow_loopback=loopback)
