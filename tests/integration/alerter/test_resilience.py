"""Restarts and sharing: kill -9 while firing, and two instances in one group."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from logriver_alerter.rebuild import partition_for
from logriver_common.event import Level
from tests.integration.alerter.conftest import (
    Events,
    StartAlerter,
    StartReceiver,
    admin_client,
    create_channel,
    create_rule,
    wait_rules_loaded,
)
from tests.integration.alerter.receivers import Receiver, webhook_handler
from tests.stack import eventually

pytestmark = [pytest.mark.integration]


def kinds_for(receiver: Receiver, service: str) -> list[str]:
    return [r.json()["kind"] for r in receiver.accepted if r.json()["service"] == service]


async def test_kill_9_while_firing_neither_refires_nor_loses_the_resolution(
    start_alerter: StartAlerter,
    receivers: StartReceiver,
    events: Events,
    db: asyncpg.Pool,
    unique: str,
) -> None:
    hook = await receivers(webhook_handler())
    service = f"api-{unique}"
    # A window long enough that the errors are still in it after the restart.
    window = 25
    first = start_alerter()
    async with admin_client(first) as api:
        await create_channel(api, "hook", {"type": "webhook", "url": hook.url})
        await create_rule(
            api,
            name=f"errors {unique}",
            services=[service],
            condition={"type": "count", "level": "ERROR", "threshold": 20},
            window_seconds=window,
            min_events=1,
            channels=["hook"],
        )
        await wait_rules_loaded(api, 1)
    await events.send(service, Level.ERROR, 30)
    await eventually(lambda: _async(kinds_for(hook, service) == ["firing"]), what="firing")

    # Wait for the offsets past the burst to be committed, then crash without cleanup.
    partition = partition_for(service, 6)

    async def committed() -> bool:
        offset = await db.fetchval(
            "SELECT next_offset FROM alerter_progress WHERE partition = $1", partition
        )
        return offset is not None and offset >= 30

    await eventually(committed, what="offsets committed")
    first.kill()
    killed_at = datetime.now(UTC)

    second = start_alerter()
    async with admin_client(second) as api:
        # The new instance rebuilt the window from MongoDB and the state from PostgreSQL:
        # it evaluates the incident as still firing, and does not announce it again.
        async def evaluated_again() -> bool:
            row = await db.fetchrow("SELECT * FROM alerts WHERE service = $1", service)
            assert row is not None
            return bool(row["last_evaluated_at"] > killed_at and row["state"] == "firing")

        await eventually(evaluated_again, within=30, what="re-evaluated after restart")
        assert kinds_for(hook, service) == ["firing"]
        current = (await api.get("/v1/alerts/current")).json()["alerts"]
        assert [(a["service"], a["state"]) for a in current] == [(service, "firing")]

        # When the errors leave the window, the resolution is delivered, once.
        await eventually(
            lambda: _async(kinds_for(hook, service) == ["firing", "resolved"]),
            within=window + 20,
            what="resolved after restart",
        )
    assert await db.fetchval("SELECT count(*) FROM alerts") == 1
    assert await db.fetchval("SELECT count(*) FROM alert_notifications") == 2


async def test_two_instances_share_partitions_and_notify_each_incident_once(
    start_alerter: StartAlerter,
    receivers: StartReceiver,
    events: Events,
    db: asyncpg.Pool,
    unique: str,
) -> None:
    hook = await receivers(webhook_handler())
    # Services spread over partitions, so both instances own some of them.
    services = [f"svc{i}-{unique}" for i in range(8)]
    instances = [start_alerter(), start_alerter()]
    async with admin_client(instances[0]) as api, admin_client(instances[1]) as other:
        await create_channel(api, "hook", {"type": "webhook", "url": hook.url})
        await create_rule(
            api,
            name=f"rate {unique}",
            services=[f"svc*-{unique}"],
            condition={"type": "error_rate", "threshold": 0.5},
            window_seconds=3,
            min_events=10,
            channels=["hook"],
        )

        async def split() -> tuple[list[int], list[int]] | None:
            mine = (await api.get("/v1/status")).json()
            theirs = (await other.get("/v1/status")).json()
            if mine["rules"] and theirs["rules"] and mine["partitions"] and theirs["partitions"]:
                return mine["partitions"], theirs["partitions"]
            return None

        a, b = await eventually(split, within=40, what="both instances own partitions")
        assert not set(a) & set(b)
        assert sorted(a + b) == list(range(6))
        await wait_rules_loaded(other, 1)

    for service in services:
        await events.send(service, Level.ERROR, 15)

    async def all_resolved() -> bool:
        return all(kinds_for(hook, s) == ["firing", "resolved"] for s in services)

    await eventually(all_resolved, within=30, what="every incident fired and resolved")
    assert await db.fetchval("SELECT count(*) FROM alerts") == len(services)
    assert await db.fetchval("SELECT count(*) FROM alert_notifications") == 2 * len(services)


async def _async(value: bool) -> bool:
    return value
