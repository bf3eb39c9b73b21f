"""A receiver that fails or hangs is retried and recorded, and slows no other channel."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest

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
from tests.integration.alerter.receivers import failing_handler, hanging_handler, slack_handler
from tests.stack import eventually

pytestmark = [pytest.mark.integration]


async def test_failing_and_hanging_receivers_are_retried_without_delaying_others(
    start_alerter: StartAlerter,
    receivers: StartReceiver,
    events: Events,
    db: asyncpg.Pool,
    unique: str,
) -> None:
    release = asyncio.Event()
    slack = await receivers(slack_handler())
    broken = await receivers(failing_handler(500))
    hanging = await receivers(hanging_handler(release))
    service = f"search-{unique}"
    # 3 attempts, 1 s per attempt, 0.2 s backoff (see AlerterEnv.env).
    alerter = start_alerter()
    try:
        async with admin_client(alerter) as api:
            await create_channel(api, "hang", {"type": "webhook", "url": hanging.url})
            await create_channel(api, "broken", {"type": "webhook", "url": broken.url})
            await create_channel(api, "slack", {"type": "slack", "url": slack.url})
            await create_rule(
                api,
                name=f"errors {unique}",
                services=[service],
                condition={"type": "error_rate", "threshold": 0.2},
                window_seconds=3,
                min_events=5,
                # The hanging channel first: its lane must not hold up the others.
                channels=["hang", "broken", "slack"],
            )
            await wait_rules_loaded(api, 1)
            await events.send(service, Level.ERROR, 20)

            await eventually(lambda: _has(slack.accepted), what="slack notified")
            await eventually(lambda: _has(hanging.requests), what="hanging receiver called")
            # Slack got its message before the hanging attempt could even time out.
            assert slack.accepted[0].at < hanging.requests[0].at + 1.0

            async def all_attempts_recorded() -> bool:
                rows = await db.fetch(
                    "SELECT channel, kind, outcome FROM alert_deliveries "
                    "WHERE outcome = 'failed' AND kind = 'firing'"
                )
                return {r["channel"] for r in rows} == {"hang", "broken"}

            await eventually(all_attempts_recorded, within=30, what="final failures recorded")
            rows = await db.fetch(
                "SELECT channel, attempt, status_code, outcome, error FROM alert_deliveries "
                "WHERE kind = 'firing' ORDER BY channel, attempt"
            )
            by_channel = {
                name: [
                    (r["attempt"], r["status_code"], r["outcome"])
                    for r in rows
                    if r["channel"] == name
                ]
                for name in ("broken", "hang", "slack")
            }
            assert by_channel["broken"] == [
                (1, 500, "retry"),
                (2, 500, "retry"),
                (3, 500, "failed"),
            ]
            assert by_channel["hang"] == [
                (1, None, "retry"),
                (2, None, "retry"),
                (3, None, "failed"),
            ]
            assert by_channel["slack"] == [(1, 200, "delivered")]
            assert all("timed out" in r["error"] for r in rows if r["channel"] == "hang")
            assert len(broken.requests) >= 3

            # Evaluation went on: the resolution reached Slack while the others were failing.
            await eventually(lambda: _has(slack.accepted[1:]), within=20, what="slack resolved")
            assert "RESOLVED" in slack.accepted[1].json()["text"]
            metrics = (await api.get("/metrics")).text
            assert 'channel="broken",channel_type="webhook",outcome="failed"' in metrics
    finally:
        release.set()


async def _has(items: Sequence[object]) -> bool:
    return bool(items)
