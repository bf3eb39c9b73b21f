"""What the alerter needs from storage: one repository per aggregate, as Protocols.

The evaluator, consumer, dispatcher and routes depend on these Protocols only;
``store.py`` implements them on PostgreSQL and the unit tests' fakes implement
them in memory, so mypy checks both against the same signatures.

Storage errors become domain errors in one place, :func:`storage_errors`: a
unique-constraint violation is :class:`Conflict`, anything else that means
"PostgreSQL cannot answer now" (server errors, a closed pool, a dropped
connection, a timeout) is :class:`StorageUnavailable`. Nothing above the
repositories catches an asyncpg exception.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, Protocol, TypeVar

import asyncpg

from logriver_alerter.message import AlertMessage
from logriver_alerter.records import AlertRow, Notification, Observation
from logriver_alerter.rules import Channel, ChannelSpec, Rule, RuleSpec, Silence, SilenceSpec
from logriver_common.clients import POSTGRES_UNAVAILABLE

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound=type)
Outbox = list[tuple[str, AlertMessage]]
Transition = tuple[AlertRow, list[Notification]] | None


class StorageError(Exception):
    """Base of the alerter's storage errors."""


class StorageUnavailable(StorageError):
    """PostgreSQL did not answer (down, overloaded, connection lost): retry later."""


class Conflict(StorageError):
    """A uniqueness rule refused the write (e.g. a rule name that exists)."""


def _translated(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(str(exc)) from exc
        except POSTGRES_UNAVAILABLE as exc:
            raise StorageUnavailable(f"{type(exc).__name__}: {exc}") from exc

    return call


def storage_errors(cls: C) -> C:
    """Class decorator: every public coroutine method raises only the domain errors above."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(member):
            setattr(cls, name, _translated(member))
    return cls


class RuleRepository(Protocol):
    async def create(self, spec: RuleSpec) -> Rule: ...
    async def replace(self, rule_id: str, spec: RuleSpec) -> Rule | None: ...
    async def get(self, rule_id: str) -> Rule | None: ...
    async def list_all(self) -> list[Rule]: ...
    async def delete(self, rule_id: str) -> bool: ...
    async def names_using_channel(self, channel: str) -> list[str]: ...


class ChannelRepository(Protocol):
    async def put(self, name: str, spec: ChannelSpec) -> tuple[Channel, bool]: ...
    async def get(self, name: str) -> Channel | None: ...
    async def list_all(self) -> list[Channel]: ...
    async def existing(self, names: list[str]) -> set[str]: ...
    async def delete(self, name: str) -> bool: ...


class IncidentRepository(Protocol):
    """Alerts and their transitions; a transition queues its notifications atomically."""

    async def open_pending(
        self, rule: Rule, service: str, seen: Observation, now: datetime
    ) -> AlertRow | None: ...
    async def fire(
        self,
        alert_id: int,
        seen: Observation,
        now: datetime,
        *,
        silenced: bool,
        outbox: Outbox,
        lease_s: float,
    ) -> Transition: ...
    async def resolve(
        self, alert_id: int, seen: Observation, now: datetime, *, outbox: Outbox, lease_s: float
    ) -> Transition: ...
    async def remind(
        self, alert_id: int, now: datetime, interval_s: float, *, outbox: Outbox, lease_s: float
    ) -> Transition: ...
    async def cancel_pending(self, alert_id: int) -> bool: ...
    async def touch(self, updates: list[tuple[int, float, datetime]]) -> None: ...
    async def get(self, alert_id: int) -> AlertRow | None: ...
    async def active(self) -> list[AlertRow]: ...
    async def active_for(self, rule_id: str, service: str) -> AlertRow | None: ...
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
    ) -> list[AlertRow]: ...


class DeliveryRepository(Protocol):
    """The notification outbox and every delivery attempt."""

    async def enqueue_test(
        self, channel: str, message: AlertMessage, lease_s: float
    ) -> Notification: ...
    async def claim_orphans(self, limit: int, lease_s: float) -> list[Notification]: ...
    async def release(self, notification_id: int) -> None: ...
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
    ) -> None: ...
    async def attempts_of(self, alert_id: int) -> list[dict[str, Any]]: ...


class SilenceRepository(Protocol):
    async def create(self, spec: SilenceSpec, now: datetime) -> Silence: ...
    async def list_all(self, *, active_at: datetime | None) -> list[Silence]: ...
    async def expire(self, silence_id: str, now: datetime) -> bool: ...


class ProgressRepository(Protocol):
    """Where each partition's consumer got to, for the rebuild after a rebalance."""

    async def save(
        self, group_id: str, topic: str, progress: dict[int, tuple[int, datetime]]
    ) -> None: ...
    async def load(self, group_id: str, topic: str) -> dict[int, tuple[int, datetime]]: ...


@dataclass(frozen=True, slots=True)
class Repositories:
    rules: RuleRepository
    channels: ChannelRepository
    incidents: IncidentRepository
    deliveries: DeliveryRepository
    silences: SilenceRepository
    progress: ProgressRepository


__all__ = [
    "ChannelRepository",
    "Conflict",
    "DeliveryRepository",
    "IncidentRepository",
    "Outbox",
    "ProgressRepository",
    "Repositories",
    "RuleRepository",
    "SilenceRepository",
    "StorageError",
    "StorageUnavailable",
    "Transition",
    "storage_errors",
]
