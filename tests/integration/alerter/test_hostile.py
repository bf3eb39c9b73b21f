"""Hostile input against the real alerter (PostgreSQL, Kafka): never a 5xx, no secret
comes back, no delivery leaves for a refused address, no lane dies of a bad channel."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson
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
    Answer,
    Request,
    dingtalk_handler,
    slack_handler,
    webhook_handler,
)
from tests.stack import eventually

pytestmark = [pytest.mark.integration]

DING_SECRET = "SECc0ffee0123456789"
HOOK_SECRET = "0123456789abcdef-hook-secret"
GOOD_RULE: dict[str, Any] = {
    "name": "hostile",
    "services": ["checkout"],
    "condition": {"type": "count", "threshold": 5},
    "window_seconds": 60,
    "min_events": 1,
}
FUTURE = "2999-01-01T00:00:00+00:00"

# (method, path, query, body as JSON-able value or raw bytes, headers)
Case = tuple[str, str, dict[str, str] | None, Any, dict[str, str] | None]
BAD_INPUT: list[Case] = [
    # NUL bytes and oversized values in query and path parameters (PostgreSQL refuses NUL).
    ("GET", "/v1/alerts/current", {"service": "a\x00b"}, None, None),
    ("GET", "/v1/alerts/current", {"rule_id": "a\x00b"}, None, None),
    ("GET", "/v1/alerts/current", {"severity": "a\x00b"}, None, None),
    ("GET", "/v1/alerts/current", {"service": "s" * 5000}, None, None),
    ("GET", "/v1/alerts/current", {"limit": "99999999999999999999"}, None, None),
    ("GET", "/v1/alerts", {"service": "a\x00b"}, None, None),
    ("GET", "/v1/alerts", {"state": "a\x00b"}, None, None),
    # Integers outside bigint, times outside what exists in UTC.
    ("GET", "/v1/alerts", {"before_id": "99999999999999999999999"}, None, None),
    ("GET", "/v1/alerts", {"before_id": "9223372036854775808"}, None, None),
    ("GET", "/v1/alerts", {"before_id": "-9223372036854775809"}, None, None),
    ("GET", "/v1/alerts", {"before_id": "1e400"}, None, None),
    ("GET", "/v1/alerts", {"before_id": "NaN"}, None, None),
    ("GET", "/v1/alerts", {"since": "0001-01-01T00:00:00+01:00"}, None, None),
    ("GET", "/v1/alerts", {"until": "9999-12-31T23:59:59-01:00"}, None, None),
    ("GET", "/v1/alerts", {"since": "not a time"}, None, None),
    ("GET", "/v1/alerts", {"since": "99999-01-01T00:00:00Z"}, None, None),
    ("GET", "/v1/alerts/99999999999999999999999", None, None, None),
    ("GET", "/v1/alerts/9223372036854775808", None, None, None),
    ("GET", "/v1/alerts/-1", None, None, None),
    ("GET", "/v1/alerts/abc", None, None, None),
    ("GET", "/v1/rules/a%00b", None, None, None),
    ("GET", "/v1/rules/" + "r" * 5000, None, None, None),
    ("PUT", "/v1/rules/a%00b", None, GOOD_RULE, None),
    ("DELETE", "/v1/rules/a%00b", None, None, None),
    ("DELETE", "/v1/silences/a%00b", None, None, None),
    ("GET", "/v1/channels/a%00b", None, None, None),
    ("POST", "/v1/channels/a%00b/test", None, None, None),
    # NUL and lone surrogates in body strings.
    ("POST", "/v1/rules", None, {**GOOD_RULE, "labels": {"team": "a\x00b"}}, None),
    ("POST", "/v1/rules", None, b'{"name": "x\\u0000", "services": ["a"]}', None),
    (
        "POST",
        "/v1/rules",
        None,
        json.dumps({**GOOD_RULE, "labels": {"team": "\ud800"}}).encode(),
        None,
    ),
    ("POST", "/v1/silences", None, {"service": "a", "ends_at": FUTURE, "comment": "a\x00"}, None),
    ("POST", "/v1/silences", None, {"rule_id": "a\x00b", "ends_at": FUTURE}, None),
    (
        "POST",
        "/v1/silences",
        None,
        json.dumps({"labels": {"a": "\udfff"}, "ends_at": FUTURE}).encode(),
        None,
    ),
    ("POST", "/v1/silences", None, {"service": "a", "ends_at": "9999-12-31T23:59:59-01:00"}, None),
    (
        "POST",
        "/v1/silences",
        None,
        {"service": "a", "starts_at": "0001-01-01T00:00:00+01:00", "ends_at": FUTURE},
        None,
    ),
    ("POST", "/v1/silences", None, {"service": "a", "ends_at": "2999-01-01T00:00:00"}, None),
    (
        "PUT",
        "/v1/channels/bad",
        None,
        {"type": "dingtalk", "url": "https://d.example/?access_token=t", "secret": "a\x00"},
        None,
    ),
    (
        "PUT",
        "/v1/channels/bad",
        None,
        json.dumps(
            {"type": "webhook", "url": "https://w.example/", "secret": "\ud800" * 20}
        ).encode(),
        None,
    ),
    # Framing and hop-by-hop headers, header injection.
    *[
        (
            "PUT",
            "/v1/channels/bad",
            None,
            {"type": "webhook", "url": "https://w.example/", "headers": {name: value}},
            None,
        )
        for name, value in [
            ("Content-Length", "5"),
            ("Transfer-Encoding", "chunked"),
            ("Host", "internal.example"),
            ("Connection", "close"),
            ("Keep-Alive", "timeout=1"),
            ("Upgrade", "h2c"),
            ("TE", "trailers"),
            ("Trailer", "X"),
            ("Proxy-Authorization", "Basic eA=="),
            ("X-A", "a\r\nX-Injected: 1"),
            ("X-A", "a\x00"),
            ("X-A", "v" * 5000),
        ]
    ],
    # A mask for a channel that has no stored secret.
    (
        "PUT",
        "/v1/channels/new-masked",
        None,
        {"type": "dingtalk", "url": "https://d.example/?access_token=***", "secret": "***"},
        None,
    ),
    # Wrong types, extreme numbers, broken and odd bodies.
    ("POST", "/v1/rules", None, {**GOOD_RULE, "window_seconds": "abc"}, None),
    ("POST", "/v1/rules", None, {**GOOD_RULE, "min_events": 10**30}, None),
    ("POST", "/v1/rules", None, {**GOOD_RULE, "window_seconds": -(2**63)}, None),
    (
        "POST",
        "/v1/rules",
        None,
        b'{"name": "x", "condition": {"type": "count", "threshold": 1e400}}',
        None,
    ),
    ("POST", "/v1/rules", None, b'{"condition": {"type": "error_rate", "threshold": NaN}}', None),
    ("POST", "/v1/rules", None, {**GOOD_RULE, "name": "n" * 100_000}, None),
    ("POST", "/v1/rules", None, [GOOD_RULE], None),
    ("POST", "/v1/rules", None, b"null", None),
    ("POST", "/v1/rules", None, b"{not json", None),
    ("POST", "/v1/rules", None, b"\xff\xfe\x00garbage", None),
    ("POST", "/v1/rules", None, b"[" * 100_000 + b"]" * 100_000, None),
    ("POST", "/v1/rules", None, b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, None),
    ("POST", "/v1/rules", None, b"{}", {"Content-Type": "text/plain"}),
    ("POST", "/v1/rules", None, b"x" * (2 * 1024 * 1024), None),
    ("PUT", "/v1/channels/ok", None, b'{"type": "slack", "url": "' + b"a" * 10_000 + b'"}', None),
    ("POST", "/v1/silences", None, {"service": "a", "ends_at": 10**30}, None),
]


def _raw(case: Case) -> tuple[str, str, dict[str, str] | None, bytes | None, dict[str, str]]:
    method, path, query, body, headers = case
    out_headers = dict(headers or {})
    if body is None:
        return method, path, query, None, out_headers
    if isinstance(body, bytes):
        out_headers.setdefault("Content-Type", "application/json")
        return method, path, query, body, out_headers
    out_headers.setdefault("Content-Type", "application/json")
    return method, path, query, json.dumps(body).encode(), out_headers


async def test_bad_input_is_a_4xx_in_the_error_shape_never_a_5xx(
    start_alerter: StartAlerter,
) -> None:
    alerter = start_alerter()
    async with admin_client(alerter) as api:
        for case in BAD_INPUT:
            method, path, query, body, headers = _raw(case)
            resp = await api.request(method, path, params=query, content=body, headers=headers)
            shown = (method, path, query, (body or b"")[:80])
            assert 400 <= resp.status_code < 500, (shown, resp.status_code, resp.text[:300])
            error = resp.json()
            assert set(error) == {"error", "detail", "request_id"}, (shown, error)
            assert error["request_id"], shown
        # The cases above asked for int overflow and NUL at PostgreSQL; nothing broke.
        assert (await api.get("/readyz")).status_code == 200
        assert (await api.get("/v1/rules")).json() == {"rules": []}
        # A body without a Content-Type is read as JSON (json_body.py), and so is one
        # with curl's form default: the second is the same rule again, a 409.
        resp = await api.post("/v1/rules", content=json.dumps(GOOD_RULE).encode())
        assert "content-type" not in resp.request.headers
        assert resp.status_code == 201, resp.text
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        resp = await api.post("/v1/rules", content=json.dumps(GOOD_RULE).encode(), headers=form)
        assert resp.status_code == 409, resp.text
        assert resp.json()["error"] == "conflict"
        # Another type is a 415 that names the header to send.
        text = {"Content-Type": "text/plain"}
        resp = await api.post("/v1/rules", content=json.dumps(GOOD_RULE).encode(), headers=text)
        assert resp.status_code == 415, resp.text
        assert "Content-Type: application/json" in resp.json()["detail"]


async def test_channels_are_masked_and_a_round_trip_keeps_their_secrets(
    start_alerter: StartAlerter, receivers: StartReceiver, db: asyncpg.Pool
) -> None:
    slack = await receivers(slack_handler())
    dingtalk = await receivers(dingtalk_handler(DING_SECRET, access_token="tok-secret-1"))
    hook = await receivers(webhook_handler(HOOK_SECRET))
    alerter = start_alerter()
    slack_url = slack.url + "/T0/B0/slack-path-secret"
    configs: dict[str, dict[str, Any]] = {
        "slack": {"type": "slack", "url": slack_url},
        "ding": {
            "type": "dingtalk",
            "url": f"{dingtalk.url}?access_token=tok-secret-1",
            "secret": DING_SECRET,
        },
        "hook": {
            "type": "webhook",
            "url": f"{hook.url}?key=query-secret",
            "secret": HOOK_SECRET,
            "headers": {"Authorization": "Bearer header-secret", "X-Team": "payments"},
        },
    }
    secrets = ["slack-path-secret", "tok-secret-1", DING_SECRET, "query-secret", HOOK_SECRET]
    secrets.append("header-secret")
    async with admin_client(alerter) as api:
        for name, config in configs.items():
            resp = await api.put(f"/v1/channels/{name}", json=config)
            assert resp.status_code == 201, resp.text
            assert not any(s in resp.text for s in secrets), resp.text
        listing = await api.get("/v1/channels")
        one = await api.get("/v1/channels/hook")
        for text in (listing.text, one.text):
            assert not any(s in text for s in secrets), text
        shown = {c["name"]: c for c in listing.json()["channels"]}
        assert shown["slack"]["url"] == f"http://127.0.0.1:{slack.port}/***"
        assert shown["ding"]["url"].endswith("?access_token=***")
        assert shown["ding"]["secret"] == "***"
        assert shown["hook"]["headers"] == {"Authorization": "***", "X-Team": "***"}
        assert shown["hook"]["url"].endswith("/hook?key=***")

        # Read, change one thing, write back: the masks keep the stored secrets.
        for name, view in shown.items():
            view = {k: v for k, v in view.items() if k != "name"}
            if name == "hook":
                view["headers"] = {**view["headers"], "X-Team": "search"}
            resp = await api.put(f"/v1/channels/{name}", json=view)
            assert resp.status_code == 200, resp.text
        stored = {
            r["name"]: orjson.loads(r["config"])
            for r in await db.fetch("SELECT name, config::text FROM alert_channels")
        }
        assert stored["slack"]["url"] == slack_url
        assert stored["ding"] == configs["ding"]
        assert stored["hook"]["secret"] == HOOK_SECRET
        assert stored["hook"]["headers"] == {
            "Authorization": "Bearer header-secret",
            "X-Team": "search",
        }
        # The receivers verify signatures, tokens and the header: the secrets still work.
        for name in configs:
            resp = await api.post(f"/v1/channels/{name}/test")
            assert resp.json()["delivered"] is True, (name, resp.text)
        (request,) = hook.accepted
        assert request.headers["authorization"] == "Bearer header-secret"
        assert request.query == {"key": ["query-secret"]}
        assert slack.accepted[0].path == "/hook/T0/B0/slack-path-secret"

        # Leaving a secret out replaces it (PUT replaces the channel); a mask under a
        # changed URL is refused rather than guessed.
        resp = await api.put(
            "/v1/channels/hook", json={"type": "webhook", "url": f"{hook.url}?key=query-secret"}
        )
        assert resp.status_code == 200
        assert resp.json()["secret"] is None
        resp = await api.put(
            "/v1/channels/ding",
            json={"type": "dingtalk", "url": "https://elsewhere.example/?access_token=***",
                  "secret": "***"},
        )  # fmt: skip
        assert resp.status_code == 422
        assert [e["loc"] for e in resp.json()["detail"]] == [["body", "dingtalk", "url"]]


async def test_test_fire_reports_status_and_reason_never_the_body(
    start_alerter: StartAlerter, receivers: StartReceiver, db: asyncpg.Pool
) -> None:
    async def internal_api(request: Request) -> Answer:
        return 422, b'{"detail": "internal-only: db password is hunter2"}'

    async def redirecting(request: Request) -> Answer:
        return 302, b"see http://169.254.169.254/latest/meta-data/"

    internal = await receivers(internal_api)
    redirect = await receivers(redirecting)
    alerter = start_alerter()
    async with admin_client(alerter) as api:
        await create_channel(api, "internal", {"type": "webhook", "url": internal.url})
        await create_channel(api, "redirect", {"type": "webhook", "url": redirect.url})
        await create_channel(
            api, "ding", {"type": "dingtalk", "url": internal.url, "secret": "SECx"}
        )
        resp = await api.post("/v1/channels/internal/test")
        assert resp.status_code == 200
        body = resp.json()
        assert set(body) == {"channel", "delivered", "status_code", "error", "duration_ms"}
        assert body["delivered"] is False
        assert body["status_code"] == 422
        assert body["error"] == "HTTP 422 Unprocessable Content" or body["error"] == (
            "HTTP 422 Unprocessable Entity"
        )
        resp = await api.post("/v1/channels/redirect/test")
        assert resp.json()["status_code"] == 302
        assert "not followed" in resp.json()["error"]
        assert len(redirect.requests) == 1
        resp = await api.post("/v1/channels/ding/test")
        assert resp.json()["delivered"] is False
        for text in [
            resp.text,
            *[str(dict(r)) for r in await db.fetch("SELECT * FROM alert_deliveries")],
        ]:
            assert "hunter2" not in text
            assert "169.254" not in text


async def test_egress_is_refused_for_loopback_metadata_and_private_addresses(
    start_alerter: StartAlerter,
    receivers: StartReceiver,
    events: Events,
    db: asyncpg.Pool,
    unique: str,
) -> None:
    hook = await receivers(webhook_handler())
    service = f"egress-{unique}"
    alerter = start_alerter(LOGRIVER_ALERTER_EGRESS_ALLOW_LOOPBACK="false")
    targets = {
        "loopback": hook.url,
        "named": f"http://localhost:{hook.port}/hook",
        "mapped": f"http://[::ffff:127.0.0.1]:{hook.port}/hook",
        "decimal": f"http://2130706433:{hook.port}/hook",
        "metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "metadata6": "http://[fd00:ec2::254]/latest/meta-data/",
        "private": "http://10.255.255.1:9/hook",
        "cgnat": "http://100.64.0.1/hook",
        "zero": f"http://0.0.0.0:{hook.port}/hook",
    }
    async with admin_client(alerter) as api:
        for name, url in targets.items():
            await create_channel(api, name, {"type": "webhook", "url": url})
            resp = await api.post(f"/v1/channels/{name}/test")
            assert resp.status_code == 200, resp.text
            result = resp.json()
            assert result["delivered"] is False, (name, result)
            assert result["status_code"] is None
            assert result["error"].startswith("egress refused"), (name, result)
            # Refused before any connection: no timeout was waited for.
            assert result["duration_ms"] < 500, (name, result)
        assert hook.requests == []

        # A firing alert to a refused channel: one failed attempt with the reason, no retry.
        await create_rule(
            api,
            name=f"errors {unique}",
            services=[service],
            condition={"type": "count", "threshold": 5},
            window_seconds=10,
            min_events=1,
            channels=["loopback", "metadata"],
        )
        await wait_rules_loaded(api, 1)
        await events.send(service, Level.ERROR, 10)

        async def recorded() -> bool:
            rows = await db.fetch(
                "SELECT channel FROM alert_deliveries WHERE kind = 'firing' AND outcome = 'failed'"
            )
            return {r["channel"] for r in rows} == {"loopback", "metadata"}

        await eventually(recorded, within=30, what="refused deliveries recorded")
        rows = await db.fetch(
            "SELECT channel, attempt, outcome, error FROM alert_deliveries WHERE kind = 'firing'"
        )
        assert sorted((r["channel"], r["attempt"], r["outcome"]) for r in rows) == [
            ("loopback", 1, "failed"),
            ("metadata", 1, "failed"),
        ]
        errors = {r["channel"]: r["error"] for r in rows}
        assert "loopback" in errors["loopback"]
        assert "cloud metadata" in errors["metadata"]
        assert hook.requests == []
        assert (await api.get("/readyz")).status_code == 200


async def test_an_allow_list_admits_an_internal_receiver(
    start_alerter: StartAlerter, receivers: StartReceiver
) -> None:
    hook = await receivers(webhook_handler())
    alerter = start_alerter(
        LOGRIVER_ALERTER_EGRESS_ALLOW_LOOPBACK="false", LOGRIVER_ALERTER_EGRESS_ALLOW="127.0.0.1/32"
    )
    async with admin_client(alerter) as api:
        await create_channel(api, "allowed", {"type": "webhook", "url": hook.url})
        await create_channel(
            api, "metadata", {"type": "webhook", "url": "http://169.254.169.254/latest/"}
        )
        assert (await api.post("/v1/channels/allowed/test")).json()["delivered"] is True
        refused = (await api.post("/v1/channels/metadata/test")).json()
        assert refused["error"].startswith("egress refused")
    assert len(hook.accepted) == 1


async def test_a_channel_that_fails_oddly_at_send_time_does_not_stop_its_lane(
    start_alerter: StartAlerter,
    receivers: StartReceiver,
    events: Events,
    db: asyncpg.Pool,
    unique: str,
) -> None:
    good = await receivers(webhook_handler())
    bad = await receivers(webhook_handler())
    alerter = start_alerter()
    async with admin_client(alerter) as api:
        await create_channel(api, "good", {"type": "webhook", "url": good.url})
        # Stored before the header rules existed (the API now refuses it with a 422).
        config = {"type": "webhook", "url": bad.url, "headers": {"Content-Length": "5"}}
        await db.execute(
            "INSERT INTO alert_channels (name, config) VALUES ('framing', $1::jsonb)",
            json.dumps(config),
        )
        resp = await api.post("/v1/channels/framing/test")
        assert resp.status_code == 200
        assert resp.json()["delivered"] is False
        assert "Content-Length" in resp.json()["error"]
        first, second = f"one-{unique}", f"two-{unique}"
        for service in (first, second):
            await create_rule(
                api,
                name=f"errors {service}",
                services=[service],
                condition={"type": "count", "threshold": 5},
                window_seconds=10,
                min_events=1,
                reminder_seconds=None,
                channels=["framing", "good"],
            )
        await wait_rules_loaded(api, 2)
        await events.send(first, Level.ERROR, 10)
        await eventually(lambda: _has([r for r in good.accepted if first in r.body.decode()]))
        # The same lane takes the next notification: its worker is alive.
        await events.send(second, Level.ERROR, 10)
        await eventually(lambda: _has([r for r in good.accepted if second in r.body.decode()]))

        async def both_failed() -> bool:
            rows = await db.fetch(
                "SELECT count(*) AS n FROM alert_deliveries "
                "WHERE channel = 'framing' AND kind = 'firing' AND outcome = 'failed'"
            )
            return bool(rows[0]["n"] == 2)

        await eventually(both_failed, within=30, what="both framing deliveries recorded failed")
        errors = await db.fetch(
            "SELECT DISTINCT error FROM alert_deliveries WHERE channel = 'framing'"
        )
        assert all("update the channel" in r["error"] for r in errors)
        assert bad.requests == []
        ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text


async def _has(items: Sequence[object]) -> bool:
    return bool(items)
