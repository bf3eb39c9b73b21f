"""The admin API: auth, strict validation with field errors, CRUD, silences, test-fire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.alerter.conftest import (
    StartAlerter,
    StartReceiver,
    admin_client,
    create_channel,
)
from tests.integration.alerter.receivers import dingtalk_handler, slack_handler

pytestmark = [pytest.mark.integration]

SECRET = "SECc0ffee0123456789"
VALID_RULE: dict[str, Any] = {
    "name": "checkout errors",
    "services": ["checkout"],
    "condition": {"type": "error_rate", "level": "ERROR", "threshold": 0.05},
    "window_seconds": 300,
    "min_events": 20,
    "for_seconds": 60,
    "channels": ["slack"],
}

BAD_RULES: list[tuple[str, dict[str, Any], list[Any]]] = [
    ("negative window", {"window_seconds": -5}, ["body", "window_seconds"]),
    ("window too long", {"window_seconds": 86_400}, ["body", "window_seconds"]),
    ("negative for", {"for_seconds": -1}, ["body", "for_seconds"]),
    (
        "rate above 100%",
        {"condition": {"type": "error_rate", "threshold": 1.5}},
        ["body", "condition", "error_rate", "threshold"],
    ),
    (
        "zero count",
        {"condition": {"type": "count", "threshold": 0}},
        ["body", "condition", "count", "threshold"],
    ),
    (
        "unknown level",
        {"condition": {"type": "count", "level": "LOUD", "threshold": 5}},
        ["body", "condition", "count", "level"],
    ),
    ("unknown condition", {"condition": {"type": "p99", "threshold": 1}}, ["body", "condition"]),
    ("no services", {"services": []}, ["body", "services"]),
    ("bad service glob", {"services": ["check out"]}, ["body", "services", 0]),
    ("min_events zero", {"min_events": 0}, ["body", "min_events"]),
    ("bad severity", {"severity": "meh"}, ["body", "severity"]),
    ("unknown field", {"windw": 5}, ["body", "windw"]),
    ("unknown channel", {"channels": ["slack", "pagerduty"]}, ["body", "channels", 1]),
]


async def test_bad_rule_definitions_get_field_errors(
    start_alerter: StartAlerter, receivers: StartReceiver
) -> None:
    slack = await receivers(slack_handler())
    alerter = start_alerter()
    async with admin_client(alerter) as api:
        async with httpx.AsyncClient(base_url=alerter.url) as anonymous:
            resp = await anonymous.get("/v1/rules")
            assert resp.status_code == 401
            assert resp.json()["error"] == "unauthorized"
        await create_channel(api, "slack", {"type": "slack", "url": slack.url})
        for case, change, loc in BAD_RULES:
            resp = await api.post("/v1/rules", json={**VALID_RULE, **change})
            assert resp.status_code == 422, (case, resp.text)
            body = resp.json()
            assert body["error"] == "validation_failed", case
            assert body["request_id"], case
            assert loc in [d["loc"] for d in body["detail"]], (case, body["detail"])

        bad_channels = [
            ({"type": "slack", "url": "not a url"}, ["body", "slack", "url"]),
            ({"type": "slack", "url": "ftp://example.com/x"}, ["body", "slack", "url"]),
            (
                {"type": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send"},
                ["body", "dingtalk", "secret"],
            ),
            (
                {"type": "webhook", "url": "https://x.test", "secret": "short"},
                ["body", "webhook", "secret"],
            ),
            ({"type": "teams", "url": "https://x.test"}, ["body"]),
        ]
        for config, loc in bad_channels:
            resp = await api.put("/v1/channels/c1", json=config)
            assert resp.status_code == 422, (config, resp.text)
            assert loc in [d["loc"] for d in resp.json()["detail"]], (config, resp.json())
        assert (
            await api.put("/v1/channels/bad name!", json={"type": "slack", "url": slack.url})
        ).status_code == 422

        # A rule whose count threshold is below min_events could never fire.
        resp = await api.post(
            "/v1/rules",
            json={**VALID_RULE, "condition": {"type": "count", "threshold": 5}, "min_events": 10},
        )
        assert resp.status_code == 422
        assert "min_events" in str(resp.json()["detail"])
        assert (await api.get("/v1/rules")).json() == {"rules": []}


async def test_rules_channels_silences_crud_and_test_fire(
    start_alerter: StartAlerter, receivers: StartReceiver, db: asyncpg.Pool
) -> None:
    slack = await receivers(slack_handler())
    dingtalk = await receivers(dingtalk_handler(SECRET))
    alerter = start_alerter()
    async with admin_client(alerter) as api:
        await create_channel(api, "slack", {"type": "slack", "url": slack.url})
        ding_url = f"{dingtalk.url}?access_token=token"
        resp = await api.put(
            "/v1/channels/ding", json={"type": "dingtalk", "url": ding_url, "secret": SECRET}
        )
        assert resp.status_code == 201
        assert resp.json()["secret"] == "***"
        resp = await api.put(
            "/v1/channels/ding-wrong",
            json={"type": "dingtalk", "url": ding_url, "secret": "SECwrong"},
        )
        assert resp.status_code == 201

        # Rules CRUD.
        resp = await api.post("/v1/rules", json=VALID_RULE)
        assert resp.status_code == 201, resp.text
        rule = resp.json()
        assert rule["reminder_seconds"] == 3600
        assert rule["severity"] == "warning"
        assert (await api.post("/v1/rules", json=VALID_RULE)).status_code == 409
        assert (await api.get(f"/v1/rules/{rule['id']}")).json()["name"] == "checkout errors"
        changed = {**VALID_RULE, "channels": ["slack", "ding"], "severity": "critical"}
        resp = await api.put(f"/v1/rules/{rule['id']}", json=changed)
        assert resp.status_code == 200
        assert resp.json()["channels"] == ["slack", "ding"]
        assert (await api.delete("/v1/channels/ding")).status_code == 409  # still in use
        assert [r["id"] for r in (await api.get("/v1/rules")).json()["rules"]] == [rule["id"]]

        # Test-fire: DingTalk verifies the signature; a wrong secret is refused.
        resp = await api.post("/v1/channels/ding/test")
        assert resp.json()["delivered"] is True, resp.text
        resp = await api.post("/v1/channels/ding-wrong/test")
        result = resp.json()
        assert result["delivered"] is False
        assert result["status_code"] == 200
        assert "310000" in result["error"]
        assert len(dingtalk.requests) == 2
        assert len(dingtalk.accepted) == 1
        resp = await api.post("/v1/channels/slack/test")
        assert resp.json()["delivered"] is True
        assert "TEST" in slack.accepted[0].json()["text"]
        recorded = await db.fetch(
            "SELECT channel, outcome FROM alert_deliveries WHERE kind = 'test' ORDER BY id"
        )
        assert [(r["channel"], r["outcome"]) for r in recorded] == [
            ("ding", "delivered"),
            ("ding-wrong", "failed"),
            ("slack", "delivered"),
        ]
        assert (await api.post("/v1/channels/nope/test")).status_code == 404

        # Silences.
        now = datetime.now(UTC)
        resp = await api.post(
            "/v1/silences", json={"ends_at": (now + timedelta(hours=1)).isoformat()}
        )
        assert resp.status_code == 422
        resp = await api.post(
            "/v1/silences",
            json={"service": "checkout", "ends_at": (now - timedelta(minutes=1)).isoformat()},
        )
        assert resp.status_code == 422
        resp = await api.post(
            "/v1/silences",
            json={
                "rule_id": rule["id"],
                "ends_at": (now + timedelta(hours=1)).isoformat(),
                "comment": "deploy",
            },
        )
        assert resp.status_code == 201
        silence = resp.json()
        active = (await api.get("/v1/silences", params={"active": "true"})).json()["silences"]
        assert [s["id"] for s in active] == [silence["id"]]
        assert (await api.delete(f"/v1/silences/{silence['id']}")).status_code == 204
        assert (await api.get("/v1/silences", params={"active": "true"})).json()["silences"] == []

        # Alerts: empty, filters validated.
        assert (await api.get("/v1/alerts", params={"state": "firing"})).json()["alerts"] == []
        assert (await api.get("/v1/alerts", params={"state": "exploded"})).status_code == 422
        assert (await api.get("/v1/alerts/current")).json() == {"alerts": []}
        assert (await api.get("/v1/alerts/999")).status_code == 404

        assert (await api.delete(f"/v1/rules/{rule['id']}")).status_code == 204
        assert (await api.get(f"/v1/rules/{rule['id']}")).status_code == 404
        assert (await api.delete("/v1/channels/ding")).status_code == 204
