"""Retention: how long each stored event is kept, decided per event from a policy.

The policy is data, not code: it is read from ``LOGRIVER_RETENTION`` as JSON by
the writer (which stamps each document) and by the gateway and the relay (which
refuse, at the door, an event that retention would delete at once). An operator
changes it by restarting those with a new value. Each document gets an
``expire_at`` (event ``timestamp`` + retention) and MongoDB's TTL index on
``expire_at`` deletes it once that time has passed. A change applies to events
written from then on; stored documents keep the ``expire_at`` they were written
with.

Durations are ISO 8601 (``"P30D"``, ``"PT12H"``, ``"PT5S"``) or a number of
seconds; ``null`` means "keep forever" (no ``expire_at``, so the TTL index
ignores the document). The most specific rule wins::

    service + level  >  service  >  level  >  default
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from logriver_common.event import Level
from logriver_common.event_rule import Event

# `None` keeps an event forever; a duration keeps it that long after its timestamp.
Retention = timedelta | None
_SERVICE_NAME = Annotated[str, Field(pattern=r"^[A-Za-z0-9._\-]{1,64}$")]


def _level_keys(value: object) -> object:
    """Accept level aliases as keys ("debug", "warn"), as events themselves do."""
    if isinstance(value, dict):
        return {Level.parse(k) if isinstance(k, str) else k: v for k, v in value.items()}
    return value


def _positive(value: Retention) -> Retention:
    if value is not None and value <= timedelta(0):
        raise ValueError("a retention must be positive (or null to keep forever)")
    return value


class _LevelRules(BaseModel):
    """A default and per-level retentions: the shape of both the policy and an override."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Retention
    levels: dict[Level, Retention] = Field(default_factory=dict)

    @field_validator("default")
    @classmethod
    def _default_positive(cls, value: Retention) -> Retention:
        return _positive(value)

    @field_validator("levels", mode="before")
    @classmethod
    def _levels_aliases(cls, value: object) -> object:
        return _level_keys(value)

    @field_validator("levels")
    @classmethod
    def _levels_positive(cls, value: dict[Level, Retention]) -> dict[Level, Retention]:
        for retention in value.values():
            _positive(retention)
        return value


class ServiceRetention(_LevelRules):
    """Overrides for one service: its own default and, optionally, per level."""

    default: Retention = Field(
        default=None, description="This service's default (the global rules apply when absent)."
    )


class RetentionPolicy(_LevelRules):
    """``{"default": "P30D", "levels": {"DEBUG": "P3D"}, "services": {"audit": {...}}}``."""

    default: Retention = Field(default=timedelta(days=30))
    services: dict[_SERVICE_NAME, ServiceRetention] = Field(default_factory=dict)

    def retention_for(self, service: str, level: Level) -> Retention:
        override = self.services.get(service)
        if override is not None:
            if level in override.levels:
                return override.levels[level]
            # An explicit `"default": null` means keep forever; an absent one falls through.
            if "default" in override.model_fields_set:
                return override.default
        if level in self.levels:
            return self.levels[level]
        return self.default

    def expire_at(self, service: str, level: Level, timestamp: datetime) -> datetime | None:
        """When the event may be deleted; None keeps it forever."""
        retention = self.retention_for(service, level)
        return None if retention is None else timestamp + retention

    def refusal(self, event: Event, now: datetime) -> str | None:
        """Why the door must refuse ``event`` (retention would delete it at once), or None.

        Only the gateway and the relay ask: a consumer of ``logs.v1`` stores what
        was admitted even if it reads it late (the TTL monitor then removes it).
        """
        retention = self.retention_for(event.service, event.level_enum)
        if retention is None or event.when + retention > now:
            return None
        return (
            f"timestamp {event.when.isoformat()} is older than the retention of "
            f"{retention} for this service and level: it would be deleted at once"
        )


def retention_field() -> Any:
    """The ``retention`` settings field: one env var for every service that needs it."""
    return Field(
        default_factory=RetentionPolicy,
        validation_alias=AliasChoices("LOGRIVER_RETENTION", "retention"),
        description="Retention policy as JSON (LOGRIVER_RETENTION).",
    )
