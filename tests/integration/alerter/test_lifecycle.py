"""A burst fires once per channel, recovery resolves once, a quiet service stays quiet."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
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
from tests.integration.alerter.receivers import (
    Receiver,
    block_kit_errors,
    dingtalk_handler,
    slack_handler,
    webhook_handler,
)
from tests.stack import eventually

pytestmark = [pytest.mark.integration]

DINGTALK_SECRET = "SEC0123456789abcdef0123456789abcdef"
WEBHOOK_SECRET = "webhook-secret-0123456789"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def slack_kind(payload: Any) -> str:
    title: str = payload["blocks"][0]["text"]["text"]
    return title.split("]")[0].lstrip("[").lower()


def dingtalk_kind(payload: Any) -> str:
    title: str = payload["markdown"]["title"]
    return title.split("]")[0].lstrip("[").lower()


def webhook_kind(payload: Any) -> str:
    kind: str = payload["kind"]
    return kind


def accepted_kinds(receiver: Receiver, service: str, kind_of: Any) -> list[str]:
    return [kind_of(r.json()) for r in receiver.accepted if service in r.body.decode()]


async def metric(api: httpx.AsyncClient, name: str) -> float:
    text = (await api.get("/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def test_burst_fires_once_per_channel_then_resolves_once(
    start_alerter: StartAlerter,
    receivers: StartReceiver,
    events: Events,
    db: asyncpg.Pool,
    unique: str,
) -> None:
    slack = await receivers(slack_handler())
    dingtalk = await receivers(dingtalk_handler(DINGTALK_SECRET))
    webhook = await receivers(webhook_handler(WEBHOOK_SECRET))
    alerter = start_alerter()
    loud, quiet = f"checkout-{unique}", f"billing-{unique}"
    window = 3
    async with admin_client(alerter) as api:
        await create_channel(api, "slack", {"type": "slack", "url": slack.url})
        await create_channel(
            api,
            "dingtalk",
            {
                "type": "dingtalk",
                "url": f"{dingtalk.url}?access_token=token",
                "secret": DINGTALK_SECRET,
            },
        )
        await create_channel(
            api, "webhook", {"type": "webhook", "url": webhook.url, "secret": WEBHOOK_SECRET}
        )
        rule = await create_rule(
            api,
            name=f"error rate {unique}",
            services=[f"*-{unique}"],
            condition={"type": "error_rate", "level": "ERROR", "threshold": 0.5},
            window_seconds=window,
            min_events=10,
            channels=["slack", "dingtalk", "webhook"],
            labels={"team": "payments"},
        )
        await wait_rules_loaded(api, 1)

        # The quiet service: all errors, but only 3 events, fewer than min_events.
        await events.send(quiet, Level.ERROR, 3, "disk almost full")
        await events.send(loud, Level.INFO, 5, "ok")
        await events.send(loud, Level.ERROR, 40, "payment provider timed out", trace_id=TRACE_ID)
        burst_at = events.first_sent[loud]

        async def fired_everywhere() -> bool:
            return all(
                accepted_kinds(r, loud, k) == ["firing"]
                for r, k in (
                    (slack, slack_kind),
                    (dingtalk, dingtalk_kind),
                    (webhook, webhook_kind),
                )
            )

        await eventually(fired_everywhere, within=window + 10, what="firing on every channel")
        fired_after = max(r.accepted[0].at for r in (slack, dingtalk, webhook)) - burst_at
        assert fired_after <= window + 2, f"notified {fired_after:.1f}s after the first error"

        # Errors stop: once the window has slid past them, one resolved notice each.
        async def resolved_everywhere() -> bool:
            return all(
                accepted_kinds(r, loud, k) == ["firing", "resolved"]
                for r, k in (
                    (slack, slack_kind),
                    (dingtalk, dingtalk_kind),
                    (webhook, webhook_kind),
                )
            )

        await eventually(resolved_everywhere, within=window + 15, what="resolved on every channel")

        # PostgreSQL agrees: one incident, six notifications, each delivered on the first try.
        alerts = (await api.get("/v1/alerts", params={"rule_id": rule["id"]})).json()["alerts"]
        assert [(a["service"], a["state"]) for a in alerts] == [(loud, "resolved")]
        incident = alerts[0]
        assert incident["fired_at"]
        assert incident["resolved_at"]
        assert incident["value"] >= 0.5
        assert incident["matched"] >= 10
        assert incident["details"]["sample_trace_id"] == TRACE_ID

        # A receiver has the notice a moment before its delivery row is written: poll.
        async def six_recorded() -> list[tuple[str, str, str, int]] | None:
            detail = (await api.get(f"/v1/alerts/{incident['id']}")).json()
            rows = sorted(
                (d["channel"], d["kind"], d["outcome"], d["status_code"])
                for d in detail["deliveries"]
            )
            return rows if len(rows) >= 6 else None

        assert await eventually(six_recorded, within=10, what="six delivery rows") == [
            ("dingtalk", "firing", "delivered", 200),
            ("dingtalk", "resolved", "delivered", 200),
            ("slack", "firing", "delivered", 200),
            ("slack", "resolved", "delivered", 200),
            ("webhook", "firing", "delivered", 200),
            ("webhook", "resolved", "delivered", 200),
        ]
        queued = await db.fetchval(
            "SELECT count(*) FROM alert_notifications WHERE state <> 'delivered'"
        )
        assert queued == 0

        # The quiet service was counted (every event was) and never became an incident.
        assert await metric(api, 'logriver_alerter_events_total{outcome="counted"}') >= 48
        assert await db.fetchval("SELECT count(*) FROM alerts WHERE service = $1", quiet) == 0
        assert not any(quiet in r.body.decode() for r in slack.requests + webhook.requests)

    # The Slack message is valid Block Kit with a text fallback, and links where it should.
    firing = slack.accepted[0].json()
    assert block_kit_errors(firing) == []
    assert "FIRING" in firing["text"]
    assert loud in firing["text"]
    urls = [e["url"] for b in firing["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert urls == [
        f"http://console.test/?service={loud}",
        f"http://console.test/trace.html?trace_id={TRACE_ID}",
    ]
    assert "payment provider timed out" in slack.accepted[0].body.decode()
    # The webhook was signed and carries the values.
    hook = webhook.accepted[0].json()
    assert hook["rule_name"] == f"error rate {unique}"
    assert hook["threshold"] == 0.5
