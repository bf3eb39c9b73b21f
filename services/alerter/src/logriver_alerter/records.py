"""The alerter's stored rows as plain values (no database types beyond the row reader)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from logriver_alerter.message import AlertMessage, Kind

ACTIVE_STATES = ("pending", "firing")


def load_json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


@dataclass(slots=True)
class AlertRow:
    """One incident of a (rule, service) fingerprint."""

    id: int
    rule_id: str
    rule_name: str
    service: str
    severity: str
    labels: dict[str, str]
    state: str
    pending_since: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    resolved_reason: str | None
    value: float
    threshold: float
    matched: int
    total: int
    window_seconds: int
    peak_value: float
    last_value: float | None
    last_evaluated_at: datetime | None
    last_notified_at: datetime | None
    silenced: bool
    details: dict[str, Any]

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> AlertRow:
        data = dict(row)
        data["labels"] = load_json(data["labels"])
        data["details"] = load_json(data["details"])
        return cls(**data)

    def public(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__}
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        return data


@dataclass(frozen=True, slots=True)
class Observation:
    """The values an evaluation saw, stored with the alert."""

    value: float
    threshold: float
    matched: int
    total: int
    window_seconds: int
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    alert_id: int | None
    channel: str
    kind: Kind
    message: AlertMessage
    attempts: int
