"""The evaluator end to end in memory: events in, transitions and notifications out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from logriver_alerter.evaluator import Evaluator, judge
from logriver_alerter.records import Notification, Observation
from logriver_alerter.rules import Rule, Silence
from logriver_alerter.settings import AlerterSettings
from logriver_common.event import Level, LogEvent
from tests.unit.alerter.fakes import FakeStore

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def make_rule(**change: Any) -> Rule:
    spec: dict[str, Any] = {
        "id": "r1",
        "name": "api errors",
        "services": ["api*"],
        "condition": {"type": "error_rate", "threshold": 0.5},
        "window_seconds": 10,
        "min_events": 5,
        "channels": ["slack", "hook"],
        "created_at": T0,
        "updated_at": T0,
    }
    return Rule.model_validate({**spec, **change})


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Sink:
    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def submit(self, notifications: Iterable[Notification]) -> None:
        self.sent += notifications


async def setup(rule: Rule) -> tuple[Evaluator, FakeStore, Sink, Clock]:
    store, sink, clock = FakeStore([rule]), Sink(), Clock()
    settings = AlerterSettings(lateness_s=0)
    evaluator = Evaluator(store.repos, sink, settings, clock)
    await evaluator.refresh()
    evaluator.install(0, {}, [])
    return evaluator, store, sink, clock


def feed(evaluator: Evaluator, clock: Clock, service: str, level: Level, n: int) -> None:
    for i in range(n):
        event = LogEvent(
            service=service,
            level=level,
            message=f"{level} {i % 2}",
            timestamp=clock.now - timedelta(milliseconds=10 * i),
        )
        evaluator.ingest(0, event, clock.now)


def kinds(sink: Sink) -> list[tuple[str, str]]:
    return [(n.channel, n.kind) for n in sink.sent]


async def test_burst_fires_once_and_resolves_once_per_channel() -> None:
    evaluator, store, sink, clock = await setup(make_rule())
    feed(evaluator, clock, "api-1", Level.ERROR, 8)
    feed(evaluator, clock, "api-1", Level.INFO, 2)
    feed(evaluator, clock, "api-quiet", Level.ERROR, 3)  # fewer than min_events
    clock.now += timedelta(seconds=1)
    await evaluator.tick()
    assert kinds(sink) == [("slack", "firing"), ("hook", "firing")]
    message = sink.sent[0].message
    assert message.service == "api-1"
    assert message.value == 0.8
    assert message.top_messages[0].count == 4
    for _ in range(5):  # still firing: nothing new
        clock.now += timedelta(seconds=1)
        await evaluator.tick()
    assert len(sink.sent) == 2
    clock.now += timedelta(seconds=10)  # the burst has left the window
    await evaluator.tick()
    await evaluator.tick()
    assert kinds(sink)[2:] == [("slack", "resolved"), ("hook", "resolved")]
    assert [(a.service, a.state) for a in store.alerts.values()] == [("api-1", "resolved")]


async def test_for_duration_holds_the_alert_pending() -> None:
    evaluator, store, sink, clock = await setup(make_rule(for_seconds=5, window_seconds=60))
    feed(evaluator, clock, "api", Level.ERROR, 10)
    clock.now += timedelta(seconds=1)
    await evaluator.tick()
    assert [a.state for a in store.alerts.values()] == ["pending"]
    assert sink.sent == []
    clock.now += timedelta(seconds=5)
    await evaluator.tick()
    assert kinds(sink) == [("slack", "firing"), ("hook", "firing")]


async def test_pending_that_recovers_is_dropped_silently() -> None:
    evaluator, store, sink, clock = await setup(make_rule(for_seconds=30))
    feed(evaluator, clock, "api", Level.ERROR, 10)
    clock.now += timedelta(seconds=1)
    await evaluator.tick()
    clock.now += timedelta(seconds=15)
    await evaluator.tick()
    assert store.alerts == {}
    assert sink.sent == []


async def test_reminders_while_firing() -> None:
    evaluator, _, sink, clock = await setup(make_rule(window_seconds=120, reminder_seconds=30))
    feed(evaluator, clock, "api", Level.ERROR, 10)
    clock.now += timedelta(seconds=1)
    await evaluator.tick()
    clock.now += timedelta(seconds=29)
    await evaluator.tick()
    assert len(sink.sent) == 2
    clock.now += timedelta(seconds=1)
    await evaluator.tick()
    assert kinds(sink)[2:] == [("slack", "reminder"), ("hook", "reminder")]


async def test_silenced_incidents_are_recorded_but_not_announced() -> None:
    evaluator, store, sink, clock = await setup(make_rule())
    store.silences = [
        Silence(
            id="s",
            rule_id="r1",
            service=None,
            labels={},
            starts_at=T0,
            ends_at=T0 + timedelta(hours=1),
            comment="",
            created_at=T0,
        )
    ]
    await evaluator.refresh()
    feed(evaluator, clock, "api", Level.ERROR, 10)
    clock.now += timedelta(seconds=1)
    await evaluator.tick()
    assert [(a.state, a.silenced) for a in store.alerts.values()] == [("firing", True)]
    clock.now += timedelta(seconds=20)
    await evaluator.tick()
    assert sink.sent == []


async def test_lost_race_takes_the_state_from_the_store() -> None:
    evaluator, store, sink, clock = await setup(make_rule())
    rule = store.rules[0]
    # Another instance already has this incident firing.
    row = await store.incidents.open_pending(rule, "api", judge_obs(), clock.now)
    assert row is not None
    await store.incidents.fire(row.id, judge_obs(), clock.now, silenced=False, outbox=[], lease_s=1)
    feed(evaluator, clock, "api", Level.ERROR, 10)
    clock.now += timedelta(seconds=1)
    await evaluator.tick()
    assert sink.sent == []
    assert evaluator.active[("r1", "api")].state == "firing"


def judge_obs() -> Observation:
    return Observation(1.0, 0.5, 10, 10, 10, {})


def test_judge_counts_and_rates() -> None:
    rate = make_rule()
    assert judge(rate, [0, 5, 0, 5, 0]).condition
    assert not judge(rate, [0, 3, 0, 1, 0]).condition  # 4 events < min_events
    count = make_rule(condition={"type": "count", "level": "WARNING", "threshold": 3}, min_events=1)
    verdict = judge(count, [0, 9, 1, 1, 1])
    assert verdict.condition
    assert verdict.value == 3.0
    assert (verdict.matched, verdict.total) == (3, 12)


async def test_late_events_are_dropped() -> None:
    evaluator, _, _, clock = await setup(make_rule())
    old = LogEvent(service="api", level=Level.ERROR, message="m", timestamp=T0 - timedelta(hours=1))
    assert not evaluator.ingest(0, old, clock.now)
    assert "api" not in evaluator.windows


async def test_how_far_back_events_count_follows_the_rules_on_refresh() -> None:
    evaluator, store, _, clock = await setup(make_rule(window_seconds=10))
    five_minutes_old = LogEvent(
        service="api", level=Level.ERROR, message="m", timestamp=T0 - timedelta(minutes=5)
    )
    assert not evaluator.ingest(0, five_minutes_old, clock.now)  # older than any window
    store.rules = [make_rule(window_seconds=600)]
    await evaluator.refresh()
    assert evaluator.ingest(0, five_minutes_old, clock.now)  # inside the new 10-minute window
    store.rules = []
    await evaluator.refresh()  # no rules: the default horizon of a minute
    assert not evaluator.ingest(0, five_minutes_old, clock.now)
