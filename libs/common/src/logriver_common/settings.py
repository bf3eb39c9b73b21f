"""Settings shared by every service, each read from its own environment prefix.

A service's settings class (its own prefix, e.g. ``LOGRIVER_INGEST_``) composes
these, so one ``LOGRIVER_KAFKA_BOOTSTRAP_SERVERS`` configures every service that
talks to Kafka. Defaults point at the local stack (``make up``); in production
mode a connection that still has its local default, or a secret that is still
its local default (:func:`local_secret`), refuses to start: the one check is
:func:`refuse_local_defaults`, run by every :class:`ServiceSettings`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Mode = Literal["local", "production"]

# Default secrets that sign or authenticate on the local stack only (see local_secret).
_LOCAL_SECRETS: set[str] = set()


def local_secret(value: str) -> SecretStr:
    """A secret's local-stack default; production mode refuses to start with it."""
    _LOCAL_SECRETS.add(value)
    return SecretStr(value)


class ConnectionSettings(BaseSettings):
    """A connection whose secret (URI/DSN) has a local-stack default."""

    connection_field: ClassVar[str]

    def secret(self) -> str:
        value = getattr(self, self.connection_field)
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)

    def uses_local_default(self) -> bool:
        default = type(self).model_fields[self.connection_field].default
        return self.secret() == (
            default.get_secret_value() if isinstance(default, SecretStr) else default
        )

    def env_name(self) -> str:
        return f"{self.model_config.get('env_prefix', '')}{self.connection_field}".upper()


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOGRIVER_KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "logs.v1"
    dlq_topic: str = "logs.v1.dlq"
    # Where producers outside logriver write; only the relay reads it (the trust boundary).
    raw_topic: str = "logs.raw.v1"
    request_timeout_ms: int = Field(default=10_000, ge=1000)
    # Authentication and encryption (docs/operations.md, "Kafka security"). The
    # local stack is PLAINTEXT; in Kubernetes, Strimzi's listener is SASL_SSL with
    # SCRAM-SHA-512, one KafkaUser per service, the cluster CA in ssl_cafile.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None

    @model_validator(mode="after")
    def _credentials_with_sasl(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"LOGRIVER_KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                "LOGRIVER_KAFKA_SASL_USERNAME and LOGRIVER_KAFKA_SASL_PASSWORD"
            )
        return self


class MongoSettings(ConnectionSettings):
    model_config = SettingsConfigDict(env_prefix="LOGRIVER_MONGO_", extra="ignore")
    connection_field = "uri"

    uri: SecretStr = SecretStr(
        "mongodb://127.0.0.1:27017,127.0.0.1:27018,127.0.0.1:27019/?replicaSet=rs0"
    )
    database: str = "logriver"
    collection: str = "logs"
    server_selection_timeout_ms: int = Field(default=5_000, ge=100)


class RedisSettings(ConnectionSettings):
    model_config = SettingsConfigDict(env_prefix="LOGRIVER_REDIS_", extra="ignore")
    connection_field = "url"

    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    key_prefix: str = "logriver:"


class PostgresSettings(ConnectionSettings):
    model_config = SettingsConfigDict(env_prefix="LOGRIVER_POSTGRES_", extra="ignore")
    connection_field = "dsn"

    dsn: SecretStr = SecretStr("postgresql://logriver:logriver@127.0.0.1:5432/logriver")
    min_pool_size: int = Field(default=1, ge=0)
    max_pool_size: int = Field(default=10, ge=1)


class TelemetrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOGRIVER_OTEL_", extra="ignore")

    enabled: bool = True
    endpoint: str = "http://127.0.0.1:4317"
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class ServiceSettings(BaseSettings):
    """Base of every service's settings: mode, HTTP bind, logging and telemetry.

    Subclasses set their own ``env_prefix`` and add the connections they use as
    fields (``kafka: KafkaSettings = Field(default_factory=KafkaSettings)``).
    """

    model_config = SettingsConfigDict(env_prefix="LOGRIVER_", extra="ignore", populate_by_name=True)

    mode: Mode = Field(default="local", validation_alias="LOGRIVER_MODE")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = Field(default="INFO", validation_alias="LOGRIVER_LOG_LEVEL")
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    # Allocations between two young-generation collections: 50,000, not Python's 700; the
    # query service keeps 700 (why, measured per service: tune_garbage_collector in app.py).
    gc_young_threshold: int = Field(
        default=50_000, ge=100, le=10_000_000, validation_alias="LOGRIVER_GC_YOUNG_THRESHOLD"
    )

    @model_validator(mode="after")
    def _no_local_defaults_in_production(self) -> ServiceSettings:
        if self.mode == "production":
            refuse_local_defaults(self)
        return self


def refuse_local_defaults(settings: BaseSettings) -> None:
    """The one production check: no connection or secret may keep its local default.

    Walks the settings and the settings classes nested in them (a service's
    ``kafka``, ``postgres``, stream ``tokens``...). A secret declared with
    :func:`local_secret` must be set to something else, and not left empty.
    """
    prefix = str(settings.model_config.get("env_prefix", ""))
    for name, value in settings:
        if isinstance(value, ConnectionSettings):
            if value.uses_local_default():
                raise ValueError(
                    f"LOGRIVER_MODE=production but {name} still points at the local stack; "
                    f"set {value.env_name()}"
                )
        elif isinstance(value, BaseSettings):
            refuse_local_defaults(value)
        elif isinstance(value, SecretStr) and _is_local_secret(settings, name, value):
            raise ValueError(
                f"LOGRIVER_MODE=production but {name} is the local default; "
                f"set {(prefix + name).upper()}"
            )


def _is_local_secret(settings: BaseSettings, name: str, value: SecretStr) -> bool:
    default = type(settings).model_fields[name].default
    declared_local = isinstance(default, SecretStr) and default.get_secret_value() in _LOCAL_SECRETS
    secret = value.get_secret_value()
    return declared_local and (secret in _LOCAL_SECRETS or not secret)
