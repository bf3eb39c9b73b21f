"""The environment variables each service reads, derived from its settings class.

Settings are still growing, so nothing here lists variables by hand: each
service's pydantic-settings class is walked recursively. A nested
``BaseSettings`` field (``kafka: KafkaSettings``) is read by that class with
its own ``env_prefix``; a field with a ``validation_alias`` (``LOGRIVER_MODE``)
is read under the alias; every other field under ``<prefix><FIELD>``.

Which variables a deployment must set explicitly (see docs/operations.md,
"Configuration in deployments"):

- ``LOGRIVER_MODE`` and each service's ``LOGRIVER_<SERVICE>_HOST`` / ``_PORT``;
- every connection: names ending ``_BOOTSTRAP_SERVERS``, ``_URI``, ``_URL``,
  ``_DSN``, ``_ENDPOINT``, ``_DATABASE``, plus the Kafka topic names (they must
  match the ``KafkaTopic`` resources);
- every secret: fields typed ``SecretStr`` and names ending ``_SECRET``.

Everything else (limits, timeouts, batch sizes) may keep the code's default.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from pydantic import AliasChoices, AliasPath, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from logriver_common.stream_tokens import StreamTokenSettings

SERVICES = ("ingest", "writer", "query", "stream", "alerter")
SETTINGS_CLASSES = {
    "ingest": "logriver_ingest.settings:IngestSettings",
    "writer": "logriver_writer.settings:WriterSettings",
    "query": "logriver_query.settings:QuerySettings",
    "stream": "logriver_stream.settings:StreamSettings",
    "alerter": "logriver_alerter.settings:AlerterSettings",
}
PORTS = {"ingest": 8000, "query": 8001, "stream": 8002, "alerter": 8003, "writer": 8004}
# Workloads that are not services of their own: the relay is the ingest service's
# second process (`python -m logriver_ingest relay`), reading IngestSettings.
RELAY_PORT = 8005

# Settings a service reads outside its settings class. libs/common/stream_tokens.py
# is the contract: query issues live-tail tokens and stream verifies them, both
# under LOGRIVER_STREAM_TOKEN_SECRET. Once the services nest StreamTokenSettings
# in their own settings this is redundant (the walk finds it too), never wrong.
CONTRACT_SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {
    "query": (StreamTokenSettings,),
    "stream": (StreamTokenSettings,),
}

# Secrets needed only in some configurations: Kafka's SASL password only with a
# SASL_* security protocol (the Kubernetes manifests set it; Compose is PLAINTEXT).
OPTIONAL_SECRETS = ("LOGRIVER_KAFKA_SASL_PASSWORD",)
CONNECTION_SUFFIXES = ("_BOOTSTRAP_SERVERS", "_URI", "_URL", "_DSN", "_ENDPOINT", "_DATABASE")
TOPIC_NAMES = ("LOGRIVER_KAFKA_TOPIC", "LOGRIVER_KAFKA_RAW_TOPIC", "LOGRIVER_KAFKA_DLQ_TOPIC")


@dataclass(frozen=True)
class EnvVar:
    name: str
    secret: bool  # typed SecretStr (or named *_SECRET): must come from a Secret in production
    aliases: tuple[str, ...] = ()  # other names pydantic also accepts for this field


def settings_class(service: str) -> type[BaseSettings]:
    module, _, name = SETTINGS_CLASSES[service].partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert inspect.isclass(cls)
    assert issubclass(cls, BaseSettings)
    return cls


def _nested_settings(annotation: Any) -> type[BaseSettings] | None:
    """The BaseSettings class of a field typed ``X`` or ``X | None``, else None."""
    candidates = [annotation, *get_args(annotation)] if get_origin(annotation) else [annotation]
    for candidate in candidates:
        if inspect.isclass(candidate) and issubclass(candidate, BaseSettings):
            return candidate
    return None


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(arg is SecretStr for arg in get_args(annotation))


def _names(prefix: str, field_name: str, info: FieldInfo) -> tuple[str, ...]:
    alias = info.validation_alias if info.validation_alias is not None else info.alias
    if alias is None:
        return (f"{prefix}{field_name}".upper(),)
    if isinstance(alias, str):
        return (alias.upper(),)
    if isinstance(alias, AliasChoices):
        # Only plain-string choices are environment variable names.
        return tuple(c.upper() for c in alias.choices if isinstance(c, str))
    assert isinstance(alias, AliasPath)
    return (str(alias.path[0]).upper(),)


def walk(cls: type[BaseSettings]) -> list[EnvVar]:
    """Every environment variable ``cls`` (and the settings nested in it) reads."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    found: list[EnvVar] = []
    for field_name, info in cls.model_fields.items():
        nested = _nested_settings(info.annotation)
        if nested is not None:
            found.extend(walk(nested))
            continue
        names = _names(prefix, field_name, info)
        secret = _is_secret(info.annotation) or names[0].endswith("_SECRET")
        found.append(EnvVar(names[0], secret, names[1:]))
    return found


def service_env(service: str) -> dict[str, EnvVar]:
    """Name -> variable for everything ``service`` reads."""
    classes = [settings_class(service), *CONTRACT_SETTINGS.get(service, ())]
    result: dict[str, EnvVar] = {}
    for cls in classes:
        for var in walk(cls):
            result[var.name] = var
    return result


def readable_names(service: str) -> set[str]:
    """Every name the service accepts, aliases included."""
    return {n for var in service_env(service).values() for n in (var.name, *var.aliases)}


def required(service: str) -> set[str]:
    """The variables a deployment must set explicitly for ``service`` (rules above)."""
    own = f"LOGRIVER_{service.upper()}_"
    names: set[str] = set()
    for var in service_env(service).values():
        name = var.name
        if (
            name == "LOGRIVER_MODE"
            or name in (f"{own}HOST", f"{own}PORT")
            or name in TOPIC_NAMES
            or (var.secret and name not in OPTIONAL_SECRETS)
            or name.endswith(CONNECTION_SUFFIXES)
        ):
            names.add(name)
    return names


def secrets(service: str) -> set[str]:
    """Variables that hold secrets: SecretStr fields and *_SECRET names."""
    return {v.name for v in service_env(service).values() if v.secret}
