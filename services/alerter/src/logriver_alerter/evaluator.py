"""Evaluation: events into windows, rules over windows, decisions carried out in PostgreSQL.

The consumer feeds events in (:meth:`Evaluator.ingest`); a ticker calls
:meth:`Evaluator.tick`. Only services on partitions this instance owns, and
whose state has been rebuilt, are evaluated.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from logriver_alerter import metrics
from logriver_alerter.lifecycle import Action, ActiveState, decide
from logriver_alerter.message import AlertMessage, Kind, TopMessage, console_link, trace_link
from logriver_alerter.records import AlertRow, Notification, Observation
from logriver_alerter.repositories import Repositories, StorageUnavailable
from logriver_alerter.rules import ErrorRateCondition, Rule, Silence
from logriver_alerter.settings import AlerterSettings
from logriver_alerter.windows import N_LEVELS, ServiceWindow, matched_and_total
from logriver_common.documents import LEVELS
from logriver_common.event import LogEvent
from logriver_common.event_rule import Event

log = logging.getLogger(__name__)
Fingerprint = tuple[str, str]  # (rule id, service)
DEFAULT_RETENTION_S = 60


class Submitter(Protocol):
    def submit(self, notifications: Iterable[Notification]) -> None: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    condition: bool
    value: float
    matched: int
    total: int


def judge(rule: Rule, counts: list[int]) -> Verdict:
    matched, total = matched_and_total(counts, rule.level_index)
    if isinstance(rule.condition, ErrorRateCondition):
        value = matched / total if total else 0.0
    else:
        value = float(matched)
    condition = total >= rule.min_events and value >= rule.condition.threshold
    return Verdict(condition, value, matched, total)


_LEVEL_INDEX = {name: i for i, name in enumerate(LEVELS)}


def _state(row: AlertRow) -> ActiveState:
    return ActiveState(row.id, row.state, row.pending_since, row.last_notified_at)


class Evaluator:
    def __init__(
        self,
        store: Repositories,
        submitter: Submitter,
        settings: AlerterSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.tracer = tracer or trace.get_tracer("logriver.alerter")
        self.store = store
        self.submitter = submitter
        self.settings = settings
        self.clock = clock
        self.rules: list[Rule] = []
        # How far back events still count: the longest rule window plus the lateness.
        # Kept with the rules (it was computed per event: 58% of the alerter's CPU).
        self.retention_s = self._retention_for(self.rules)
        self.silences: list[Silence] = []
        self.windows: dict[str, ServiceWindow] = {}
        # The clock reading of the batch being counted, in whole seconds (one per batch).
        self._now: datetime | None = None
        self._now_s = 0
        self.partition_of: dict[str, int] = {}
        self.ready: set[int] = set()
        # Event time reached on partitions that still have a backlog: their windows must
        # not end after it, or a lagging consumer would see a quiet service.
        self.lagging: dict[int, datetime] = {}
        self.active: dict[Fingerprint, ActiveState] = {}
        # Rules whose selectors match a service; globs are matched once per rule refresh.
        self._matching: dict[str, list[Rule]] = {}

    # -- configuration ------------------------------------------------------------------------

    async def refresh(self) -> None:
        self.rules = [r for r in await self.store.rules.list_all() if r.enabled]
        self.retention_s = self._retention_for(self.rules)
        self._matching.clear()
        self.silences = await self.store.silences.list_all(active_at=self.clock())
        rule_ids = {r.id for r in self.rules}
        # Deleting or disabling a rule closes its incidents in PostgreSQL; forget them here.
        for fingerprint in [f for f in self.active if f[0] not in rule_ids]:
            del self.active[fingerprint]

    def _retention_for(self, rules: list[Rule]) -> int:
        longest = max((r.window_seconds for r in rules), default=DEFAULT_RETENTION_S)
        return longest + math.ceil(self.settings.lateness_s) + 1

    # -- partitions ---------------------------------------------------------------------------

    def install(
        self, partition: int, windows: dict[str, ServiceWindow], alerts: Iterable[AlertRow]
    ) -> None:
        """Take over a partition with the state rebuilt for its services."""
        for service, window in windows.items():
            self.windows[service] = window
            self.partition_of[service] = partition
        for row in alerts:
            self.partition_of[row.service] = partition
            self.active[(row.rule_id, row.service)] = _state(row)
        self.ready.add(partition)

    def revoke(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self.ready -= gone
        for p in gone:
            self.lagging.pop(p, None)
        for service in [s for s, p in self.partition_of.items() if p in gone]:
            del self.partition_of[service]
            self.windows.pop(service, None)
        for fingerprint in [f for f in self.active if f[1] not in self.partition_of]:
            del self.active[fingerprint]

    # -- events -------------------------------------------------------------------------------

    def ingest(self, partition: int, event: Event | LogEvent, now: datetime) -> bool:
        """Count one event; False when it is too late for any window.

        The caller counts the outcomes in ``logriver_alerter_events_total`` (once per
        fetched batch: a Prometheus increment per event was 5% of the alerter's CPU)."""
        if now is not self._now:  # the consumer passes one `now` per fetched batch
            self._now, self._now_s = now, int(now.timestamp())
        second = int(event.when.timestamp())
        if second < self._now_s - self.retention_s:
            return False
        window = self.windows.get(event.service)
        if window is None:
            window = self.windows[event.service] = ServiceWindow()
            self.partition_of[event.service] = partition
        level = _LEVEL_INDEX[str(event.level)]
        window.add(second, level)
        window.sample(second, level, event.message, event.trace_id, event.span_id)
        return True

    def watermark(self, partition: int, now: datetime) -> int:
        end = now - timedelta(seconds=self.settings.lateness_s)
        behind = self.lagging.get(partition)
        if behind is not None and behind < end:
            end = behind
        return int(end.timestamp())

    # -- evaluation ---------------------------------------------------------------------------

    async def tick(self) -> None:
        now = self.clock()
        with metrics.TICK_SECONDS.time():
            plan = self._plan(now)
            touches: list[tuple[int, float, datetime]] = []
            for rule, service, action, verdict, end in plan:
                fingerprint = (rule.id, service)
                try:
                    await self._carry_out(rule, service, action, verdict, end, now)
                except StorageUnavailable as exc:
                    # The state in PostgreSQL is unchanged, so the next tick retries.
                    log.warning(
                        "transition failed",
                        extra={"rule": rule.id, "alert_service": service, "error": str(exc)},
                    )
                    continue
                active = self.active.get(fingerprint)
                if active is not None and action is Action.NONE:
                    touches.append((active.alert_id, verdict.value, now))
            try:
                await self.store.incidents.touch(touches)
            except StorageUnavailable as exc:
                log.warning("could not record alert values", extra={"error": str(exc)})
        metrics.FIRING.set(sum(1 for a in self.active.values() if a.state == "firing"))

    def _plan(self, now: datetime) -> list[tuple[Rule, str, Action, Verdict, int]]:
        """Decide for every (rule, service) without awaiting, so the windows cannot move."""
        rules_by_id = {r.id: r for r in self.rules}
        services = {s for s, p in self.partition_of.items() if p in self.ready}
        plan = []
        zeros = [0] * N_LEVELS
        retention = self.retention_s
        for service in services:
            end = self.watermark(self.partition_of[service], now)
            window = self.windows.get(service)
            matching = self._matching.get(service)
            if matching is None:
                matching = self._matching[service] = [r for r in self.rules if r.matches(service)]
            candidates = {r.id: r for r in matching}
            matching_ids = set(candidates)
            for rule_id, svc in self.active:
                if svc == service and rule_id in rules_by_id:
                    candidates.setdefault(rule_id, rules_by_id[rule_id])
            for rule in candidates.values():
                counts = window.counts(rule.window_seconds, end) if window else zeros
                verdict = judge(rule, counts)
                if rule.id not in matching_ids:  # the selector changed under an open incident
                    verdict = Verdict(False, verdict.value, verdict.matched, verdict.total)
                metrics.EVALUATIONS.inc()
                action = decide(
                    self.active.get((rule.id, service)),
                    verdict.condition,
                    now,
                    for_seconds=rule.for_seconds,
                    reminder_seconds=rule.reminder_seconds,
                )
                plan.append((rule, service, action, verdict, end))
            if window is not None:
                window.prune(end - retention)
                if window.empty and not any(f[1] == service for f in self.active):
                    del self.windows[service]
                    del self.partition_of[service]
                    self._matching.pop(service, None)
        return plan

    async def _carry_out(
        self, rule: Rule, service: str, action: Action, verdict: Verdict, end: int, now: datetime
    ) -> None:
        fingerprint = (rule.id, service)
        if action is Action.NONE:
            return
        seen = self._observation(rule, service, verdict, end, detailed=action is not Action.CANCEL)
        lease = self.settings.delivery_lease_s
        if action is Action.OPEN:
            row = await self.store.incidents.open_pending(rule, service, seen, now)
            if row is None:  # another instance has this incident open
                await self._reload(fingerprint)
                return
            metrics.TRANSITIONS.labels("pending").inc()
            self.active[fingerprint] = _state(row)
            if rule.for_seconds > 0:
                return
            action = Action.FIRE
        if action is Action.FIRE:
            alert_id = self.active[fingerprint].alert_id
            silenced = any(s.matches(rule, rule.id, service, now) for s in self.silences)
            message = self._message("firing", rule, service, seen, alert_id, now)
            with notification_span(self.tracer, "firing", rule, service, seen, alert_id):
                fired = await self.store.incidents.fire(
                    alert_id,
                    seen,
                    now,
                    silenced=silenced,
                    outbox=[(c, message) for c in rule.channels],
                    lease_s=lease,
                )
                await self._settle(fingerprint, fired, "firing")
        elif action is Action.RESOLVE:
            active = self.active[fingerprint]
            message = self._message("resolved", rule, service, seen, active.alert_id, now)
            with notification_span(self.tracer, "resolved", rule, service, seen, active.alert_id):
                resolved = await self.store.incidents.resolve(
                    active.alert_id,
                    seen,
                    now,
                    outbox=[(c, message) for c in rule.channels],
                    lease_s=lease,
                )
                await self._settle(fingerprint, resolved, "resolved")
        elif action is Action.CANCEL:
            await self.store.incidents.cancel_pending(self.active[fingerprint].alert_id)
            self.active.pop(fingerprint, None)
        elif action is Action.REMIND:
            active = self.active[fingerprint]
            if any(s.matches(rule, rule.id, service, now) for s in self.silences):
                return
            message = self._message("reminder", rule, service, seen, active.alert_id, now)
            reminded = await self.store.incidents.remind(
                active.alert_id,
                now,
                float(rule.reminder_seconds or 0),
                outbox=[(c, message) for c in rule.channels],
                lease_s=lease,
            )
            await self._settle(fingerprint, reminded, "reminder")

    async def _settle(
        self,
        fingerprint: Fingerprint,
        result: tuple[AlertRow, list[Notification]] | None,
        transition: str,
    ) -> None:
        if result is None:  # lost the race: PostgreSQL says what the state really is
            await self._reload(fingerprint)
            return
        row, queued = result
        metrics.TRANSITIONS.labels(transition).inc()
        if row.state == "resolved":
            self.active.pop(fingerprint, None)
        else:
            self.active[fingerprint] = _state(row)
        log.info(
            "alert %s",
            transition,
            extra={
                "alert_id": row.id,
                "rule": row.rule_name,
                "alert_service": row.service,
                "value": row.value,
                "notifications": len(queued),
            },
        )
        self.submitter.submit(queued)

    async def _reload(self, fingerprint: Fingerprint) -> None:
        row = await self.store.incidents.active_for(*fingerprint)
        if row is None:
            self.active.pop(fingerprint, None)
        else:
            self.active[fingerprint] = _state(row)

    def _observation(
        self, rule: Rule, service: str, verdict: Verdict, end: int, *, detailed: bool
    ) -> Observation:
        details: dict[str, object] = {}
        window = self.windows.get(service)
        if detailed and window is not None:
            start = end - rule.window_seconds
            top, trace_id = window.top_messages(rule.level_index, start, end)
            details = {
                "top_messages": [{"message": m, "count": c} for m, c in top],
                "sample_trace_id": trace_id,
            }
            traced = window.traced_sample(rule.level_index, start, end)
            if traced is not None:
                details["sample_trace_context"] = [traced.trace_id, traced.span_id]
        return Observation(
            value=verdict.value,
            threshold=float(rule.condition.threshold),
            matched=verdict.matched,
            total=verdict.total,
            window_seconds=rule.window_seconds,
            details=details,
        )

    def _message(
        self,
        kind: Kind,
        rule: Rule,
        service: str,
        seen: Observation,
        alert_id: int | None,
        now: datetime,
    ) -> AlertMessage:
        started = self._started(rule, service, now)
        return build_message(
            kind, rule, service, seen, alert_id, now, self.settings, started_at=started
        )

    def _started(self, rule: Rule, service: str, now: datetime) -> datetime:
        active = self.active.get((rule.id, service))
        return active.pending_since if active is not None else now


def notification_span(
    tracer: trace.Tracer,
    kind: str,
    rule: Rule,
    service: str,
    seen: Observation,
    alert_id: int | None,
) -> AbstractContextManager[object]:
    """A span in the trace of the sample event that made the rule fire (or resolve).

    Events carry their trace context in ``trace_id``/``span_id`` (the gateway's Kafka
    headers are not kept: counting must stay cheap). Without such an event there is no
    trace to join, so no span. The span covers the transition and queueing its
    notifications; delivery is asynchronous and recorded in ``alert_deliveries``.
    """
    parent = seen.details.get("sample_trace_context")
    if not isinstance(parent, list) or len(parent) != 2:
        return contextlib.nullcontext()
    try:
        context = SpanContext(
            int(parent[0], 16), int(parent[1], 16), is_remote=True, trace_flags=TraceFlags(1)
        )
    except (TypeError, ValueError):
        return contextlib.nullcontext()
    if not context.is_valid:
        return contextlib.nullcontext()
    return tracer.start_as_current_span(
        "logriver.alerter.notify",
        context=trace.set_span_in_context(NonRecordingSpan(context)),
        attributes={
            "logriver.alert.kind": kind,
            "logriver.alert.rule": rule.name,
            "logriver.alert.service": service,
            "logriver.alert.id": alert_id if alert_id is not None else -1,
            "logriver.alert.channels": len(rule.channels),
        },
    )


def build_message(
    kind: Kind,
    rule: Rule,
    service: str,
    seen: Observation,
    alert_id: int | None,
    now: datetime,
    settings: AlerterSettings,
    *,
    started_at: datetime,
) -> AlertMessage:
    raw_top = seen.details.get("top_messages") or []
    top = [TopMessage.model_validate(t) for t in raw_top] if isinstance(raw_top, list) else []
    trace_id = seen.details.get("sample_trace_id")
    trace = trace_id if isinstance(trace_id, str) else None
    return AlertMessage(
        kind=kind,
        alert_id=alert_id,
        rule_id=rule.id,
        rule_name=rule.name,
        severity=rule.severity,
        labels=rule.labels,
        service=service,
        condition=rule.condition.type,
        level=rule.condition.level,
        value=seen.value,
        threshold=seen.threshold,
        matched=seen.matched,
        total=seen.total,
        window_seconds=rule.window_seconds,
        top_messages=top,
        sample_trace_id=trace,
        started_at=started_at,
        resolved_at=now if kind == "resolved" else None,
        console_url=console_link(settings.console_base_url, service),
        trace_url=trace_link(settings.console_base_url, trace),
    )
