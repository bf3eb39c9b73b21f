"""In-memory repositories with the same conditional transitions as PostgreSQL.

Each fake implements one Protocol of ``logriver_alerter.repositories``; building
a ``Repositories`` from them (``FakeStore.repos``) makes mypy check every fake
against the real signatures.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime
from typing import Any

from logriver_alerter.message import AlertMessage
from logriver_alerter.records import AlertRow, Notification, Observation
from logriver_alerter.repositories import (
    Conflict,
    Outbox,
    Repositories,
    Transition,
)
from logriver_alerter.rules import Channel, ChannelSpec, Rule, RuleSpec, Silence, SilenceSpec


class FakeState:
    """What the fakes share (PostgreSQL's tables), for tests to inspect."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.silences: list[Silence] = []
        self.alerts: dict[int, AlertRow] = {}
        self.outbox: list[Notification] = []
        self.attempts: list[dict[str, Any]] = []
        self.released: list[int] = []
        self.channels: dict[str, Channel] = {}
        self.progress: dict[int, tuple[int, datetime]] = {}
        self.ids = itertools.count(1)

    def queue(self, alert_id: int | None, outbox: Outbox) -> list[Notification]:
        queued = [
            Notification(next(self.ids), alert_id, channel, message.kind, message, 0)
            for channel, message in outbox
        ]
        self.outbox += queued
        return queued


class FakeRules:
    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def create(self, spec: RuleSpec) -> Rule:
        if any(r.name == spec.name for r in self.state.rules):
            raise Conflict(f"rule {spec.name!r} exists")
        rule = Rule.model_validate({**spec.model_dump(), "id": f"r{next(self.state.ids)}"})
        self.state.rules.append(rule)
        return rule

    async def replace(self, rule_id: str, spec: RuleSpec) -> Rule | None:
        for i, rule in enumerate(self.state.rules):
            if rule.id == rule_id:
                self.state.rules[i] = Rule.model_validate({**spec.model_dump(), "id": rule_id})
                return self.state.rules[i]
        return None

    async def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.state.rules if r.id == rule_id), None)

    async def list_all(self) -> list[Rule]:
        return self.state.rules

    async def delete(self, rule_id: str) -> bool:
        before = len(self.state.rules)
        self.state.rules = [r for r in self.state.rules if r.id != rule_id]
        return len(self.state.rules) < before

    async def names_using_channel(self, channel: str) -> list[str]:
        return sorted(r.name for r in self.state.rules if channel in r.channels)


class FakeChannels:
    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def put(self, name: str, spec: ChannelSpec) -> tuple[Channel, bool]:
        created = name not in self.state.channels
        self.state.channels[name] = Channel(name=name, config=spec.root)
        return self.state.channels[name], created

    async def get(self, name: str) -> Channel | None:
        return self.state.channels.get(name)

    async def list_all(self) -> list[Channel]:
        return [self.state.channels[n] for n in sorted(self.state.channels)]

    async def existing(self, names: list[str]) -> set[str]:
        return {n for n in names if n in self.state.channels}

    async def delete(self, name: str) -> bool:
        return self.state.channels.pop(name, None) is not None


class FakeIncidents:
    def __init__(self, state: FakeState) -> None:
        self.state = state

    def _active(self, rule_id: str, service: str) -> AlertRow | None:
        return next(
            (
                a
                for a in self.state.alerts.values()
                if (a.rule_id, a.service) == (rule_id, service) and a.state != "resolved"
            ),
            None,
        )

    async def open_pending(
        self, rule: Rule, service: str, seen: Observation, now: datetime
    ) -> AlertRow | None:
        if self._active(rule.id, service) is not None:
            return None
        row = AlertRow(
            id=next(self.state.ids), rule_id=rule.id, rule_name=rule.name, service=service,
            severity=rule.severity, labels=rule.labels, state="pending", pending_since=now,
            fired_at=None, resolved_at=None, resolved_reason=None, value=seen.value,
            threshold=seen.threshold, matched=seen.matched, total=seen.total,
            window_seconds=seen.window_seconds, peak_value=seen.value, last_value=seen.value,
            last_evaluated_at=now, last_notified_at=None, silenced=False, details=seen.details,
        )  # fmt: skip
        self.state.alerts[row.id] = row
        return row

    async def fire(
        self,
        alert_id: int,
        seen: Observation,
        now: datetime,
        *,
        silenced: bool,
        outbox: Outbox,
        lease_s: float,
    ) -> Transition:
        row = self.state.alerts[alert_id]
        if row.state != "pending":
            return None
        row = self.state.alerts[alert_id] = replace(
            row, state="firing", fired_at=now, last_notified_at=now, silenced=silenced,
            value=seen.value, details=seen.details,
        )  # fmt: skip
        return row, [] if silenced else self.state.queue(alert_id, outbox)

    async def resolve(
        self, alert_id: int, seen: Observation, now: datetime, *, outbox: Outbox, lease_s: float
    ) -> Transition:
        row = self.state.alerts[alert_id]
        if row.state != "firing":
            return None
        row = self.state.alerts[alert_id] = replace(row, state="resolved", resolved_at=now)
        return row, [] if row.silenced else self.state.queue(alert_id, outbox)

    async def remind(
        self, alert_id: int, now: datetime, interval_s: float, *, outbox: Outbox, lease_s: float
    ) -> Transition:
        row = self.state.alerts[alert_id]
        if row.state != "firing" or row.last_notified_at is None:
            return None
        if (now - row.last_notified_at).total_seconds() < interval_s:
            return None
        row = self.state.alerts[alert_id] = replace(row, last_notified_at=now)
        return row, self.state.queue(alert_id, outbox)

    async def cancel_pending(self, alert_id: int) -> bool:
        return self.state.alerts.pop(alert_id, None) is not None

    async def touch(self, updates: list[tuple[int, float, datetime]]) -> None:
        for alert_id, value, at in updates:
            row = self.state.alerts[alert_id]
            self.state.alerts[alert_id] = replace(row, last_value=value, last_evaluated_at=at)

    async def get(self, alert_id: int) -> AlertRow | None:
        return self.state.alerts.get(alert_id)

    async def active(self) -> list[AlertRow]:
        return [a for a in self.state.alerts.values() if a.state != "resolved"]

    async def active_for(self, rule_id: str, service: str) -> AlertRow | None:
        return self._active(rule_id, service)

    async def search(
        self,
        *,
        states: list[str] | None,
        rule_id: str | None,
        service: str | None,
        severity: str | None,
        since: datetime | None,
        until: datetime | None,
        before_id: int | None,
        limit: int,
    ) -> list[AlertRow]:
        rows = [
            a
            for a in sorted(self.state.alerts.values(), key=lambda a: -a.id)
            if (states is None or a.state in states)
            and (rule_id is None or a.rule_id == rule_id)
            and (service is None or a.service == service)
            and (severity is None or a.severity == severity)
            and (before_id is None or a.id < before_id)
        ]
        return rows[:limit]


class FakeDeliveries:
    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def enqueue_test(
        self, channel: str, message: AlertMessage, lease_s: float
    ) -> Notification:
        (queued,) = self.state.queue(None, [(channel, message)])
        return queued

    async def claim_orphans(self, limit: int, lease_s: float) -> list[Notification]:
        return []

    async def release(self, notification_id: int) -> None:
        self.state.released.append(notification_id)

    async def record_attempt(
        self,
        notification: Notification,
        attempt: int,
        *,
        status_code: int | None,
        outcome: str,
        error: str | None,
        duration_ms: float,
        lease_s: float,
    ) -> None:
        self.state.attempts.append(
            {
                "channel": notification.channel,
                "attempt": attempt,
                "status_code": status_code,
                "outcome": outcome,
                "error": error,
                "duration_ms": duration_ms,
                "lease_s": lease_s,
            }
        )

    async def attempts_of(self, alert_id: int) -> list[dict[str, Any]]:
        return list(self.state.attempts)


class FakeSilences:
    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def create(self, spec: SilenceSpec, now: datetime) -> Silence:
        silence = Silence.model_validate(
            {**spec.model_dump(), "id": f"s{next(self.state.ids)}", "starts_at": now}
        )
        self.state.silences.append(silence)
        return silence

    async def list_all(self, *, active_at: datetime | None) -> list[Silence]:
        return self.state.silences

    async def expire(self, silence_id: str, now: datetime) -> bool:
        return any(s.id == silence_id for s in self.state.silences)


class FakeProgress:
    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def save(
        self, group_id: str, topic: str, progress: dict[int, tuple[int, datetime]]
    ) -> None:
        self.state.progress.update(progress)

    async def load(self, group_id: str, topic: str) -> dict[int, tuple[int, datetime]]:
        return dict(self.state.progress)


class FakeStore(FakeState):
    """The shared state plus ``repos``: what the evaluator and dispatcher are given."""

    def __init__(self, rules: list[Rule]) -> None:
        super().__init__(rules)
        self.incidents = FakeIncidents(self)
        self.deliveries = FakeDeliveries(self)
        self.repos = Repositories(
            rules=FakeRules(self),
            channels=FakeChannels(self),
            incidents=self.incidents,
            deliveries=self.deliveries,
            silences=FakeSilences(self),
            progress=FakeProgress(self),
        )
