"""An in-memory stand-in for the PostgreSQL store, with the same conditional transitions."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime
from typing import Any

from logriver_alerter.message import AlertMessage
from logriver_alerter.rules import Channel, Rule, Silence
from logriver_alerter.store import AlertRow, Notification, Observation


class FakeStore:
    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.silences: list[Silence] = []
        self.alerts: dict[int, AlertRow] = {}
        self.outbox: list[Notification] = []
        self.attempts: list[dict[str, Any]] = []
        self.released: list[int] = []
        self.channels: dict[str, Channel] = {}
        self._ids = itertools.count(1)

    async def list_rules(self) -> list[Rule]:
        return self.rules

    async def list_silences(self, *, active_at: datetime | None) -> list[Silence]:
        return self.silences

    def _active(self, rule_id: str, service: str) -> AlertRow | None:
        return next(
            (
                a
                for a in self.alerts.values()
                if (a.rule_id, a.service) == (rule_id, service) and a.state != "resolved"
            ),
            None,
        )

    async def active_alert(self, rule_id: str, service: str) -> AlertRow | None:
        return self._active(rule_id, service)

    async def open_pending(
        self, rule: Rule, service: str, seen: Observation, now: datetime
    ) -> AlertRow | None:
        if self._active(rule.id, service) is not None:
            return None
        row = AlertRow(
            id=next(self._ids), rule_id=rule.id, rule_name=rule.name, service=service,
            severity=rule.severity, labels=rule.labels, state="pending", pending_since=now,
            fired_at=None, resolved_at=None, resolved_reason=None, value=seen.value,
            threshold=seen.threshold, matched=seen.matched, total=seen.total,
            window_seconds=seen.window_seconds, peak_value=seen.value, last_value=seen.value,
            last_evaluated_at=now, last_notified_at=None, silenced=False, details=seen.details,
        )  # fmt: skip
        self.alerts[row.id] = row
        return row

    def _queue(self, alert_id: int, outbox: list[tuple[str, AlertMessage]]) -> list[Notification]:
        queued = [
            Notification(next(self._ids), alert_id, channel, message.kind, message, 0)
            for channel, message in outbox
        ]
        self.outbox += queued
        return queued

    async def fire(
        self,
        alert_id: int,
        seen: Observation,
        now: datetime,
        *,
        silenced: bool,
        outbox: list[tuple[str, AlertMessage]],
        lease_s: float,
    ) -> tuple[AlertRow, list[Notification]] | None:
        row = self.alerts[alert_id]
        if row.state != "pending":
            return None
        row = self.alerts[alert_id] = replace(
            row, state="firing", fired_at=now, last_notified_at=now, silenced=silenced,
            value=seen.value, details=seen.details,
        )  # fmt: skip
        return row, [] if silenced else self._queue(alert_id, outbox)

    async def resolve(
        self,
        alert_id: int,
        seen: Observation,
        now: datetime,
        *,
        outbox: list[tuple[str, AlertMessage]],
        lease_s: float,
    ) -> tuple[AlertRow, list[Notification]] | None:
        row = self.alerts[alert_id]
        if row.state != "firing":
            return None
        row = self.alerts[alert_id] = replace(row, state="resolved", resolved_at=now)
        return row, [] if row.silenced else self._queue(alert_id, outbox)

    async def remind(
        self,
        alert_id: int,
        now: datetime,
        interval_s: float,
        *,
        outbox: list[tuple[str, AlertMessage]],
        lease_s: float,
    ) -> tuple[AlertRow, list[Notification]] | None:
        row = self.alerts[alert_id]
        if row.state != "firing" or row.last_notified_at is None:
            return None
        if (now - row.last_notified_at).total_seconds() < interval_s:
            return None
        row = self.alerts[alert_id] = replace(row, last_notified_at=now)
        return row, self._queue(alert_id, outbox)

    async def cancel_pending(self, alert_id: int) -> bool:
        return self.alerts.pop(alert_id, None) is not None

    async def touch(self, updates: list[tuple[int, float, datetime]]) -> None:
        for alert_id, value, at in updates:
            row = self.alerts[alert_id]
            self.alerts[alert_id] = replace(row, last_value=value, last_evaluated_at=at)

    async def get_channel(self, name: str) -> Channel | None:
        return self.channels.get(name)

    async def record_attempt(self, notification: Notification, attempt: int, **fields: Any) -> None:
        self.attempts.append({"channel": notification.channel, "attempt": attempt, **fields})

    async def release(self, notification_id: int) -> None:
        self.released.append(notification_id)
