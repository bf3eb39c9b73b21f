"""PostgreSQL is the single source of truth for transitions: concurrent instances race
on conditional UPDATEs and only the winner has notifications in the outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from logriver_alerter.evaluator import build_message
from logriver_alerter.records import Observation
from logriver_alerter.repositories import Repositories
from logriver_alerter.rules import RuleSpec
from logriver_alerter.settings import AlerterSettings
from logriver_alerter.store import migrate, postgres_repositories

pytestmark = [pytest.mark.integration]

SEEN = Observation(value=0.9, threshold=0.5, matched=9, total=10, window_seconds=60, details={})


@pytest.fixture
async def store(db: asyncpg.Pool) -> Repositories:
    assert await migrate(db) == [1]
    assert await migrate(db) == []  # idempotent
    return postgres_repositories(db)


async def test_concurrent_transitions_have_exactly_one_winner(
    store: Repositories, db: asyncpg.Pool
) -> None:
    rule = await store.rules.create(
        RuleSpec.model_validate(
            {
                "name": "r",
                "services": ["api"],
                "condition": {"type": "error_rate", "threshold": 0.5},
                "window_seconds": 60,
                "channels": ["a", "b"],
            }
        )
    )
    now = datetime.now(UTC)
    opened = await asyncio.gather(
        *(store.incidents.open_pending(rule, "api", SEEN, now) for _ in range(4))
    )
    winners = [row for row in opened if row is not None]
    assert len(winners) == 1
    alert_id = winners[0].id
    message = build_message(
        "firing", rule, "api", SEEN, alert_id, now, AlerterSettings(), started_at=now
    )
    outbox = [("a", message), ("b", message)]

    fired = await asyncio.gather(
        *(
            store.incidents.fire(alert_id, SEEN, now, silenced=False, outbox=outbox, lease_s=60)
            for _ in range(4)
        )
    )
    won = [f for f in fired if f is not None]
    assert len(won) == 1
    assert [n.channel for n in won[0][1]] == ["a", "b"]

    recovered = build_message(
        "resolved", rule, "api", SEEN, alert_id, now, AlerterSettings(), started_at=now
    )
    outbox = [("a", recovered), ("b", recovered)]
    resolved = await asyncio.gather(
        *(store.incidents.resolve(alert_id, SEEN, now, outbox=outbox, lease_s=60) for _ in range(4))
    )
    assert len([r for r in resolved if r is not None]) == 1
    kinds = await db.fetch("SELECT kind FROM alert_notifications ORDER BY id")
    assert [k["kind"] for k in kinds] == ["firing", "firing", "resolved", "resolved"]
    row = await store.incidents.get(alert_id)
    assert row is not None
    assert row.state == "resolved"
    assert row.fired_at is not None
    assert row.resolved_at is not None


async def test_an_expired_lease_hands_a_notification_to_the_sweeper(
    store: Repositories, db: asyncpg.Pool
) -> None:
    rule = await store.rules.create(
        RuleSpec.model_validate(
            {
                "name": "r",
                "services": ["*"],
                "condition": {"type": "count", "threshold": 1},
                "window_seconds": 60,
                "min_events": 1,
            }
        )
    )
    now = datetime.now(UTC)
    message = build_message("test", rule, "api", SEEN, None, now, AlerterSettings(), started_at=now)
    leased = await store.deliveries.enqueue_test("a", message, lease_s=60)
    assert (
        await store.deliveries.claim_orphans(10, lease_s=60) == []
    )  # still leased to its instance
    await store.deliveries.release(leased.id)
    claimed = await store.deliveries.claim_orphans(10, lease_s=60)
    assert [n.id for n in claimed] == [leased.id]
    assert claimed[0].message == message
    assert await store.deliveries.claim_orphans(10, lease_s=60) == []  # now leased to the claimer
