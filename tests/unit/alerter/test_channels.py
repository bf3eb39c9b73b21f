"""Channel payloads, checked by the same verifiers the integration receivers use."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import orjson

from logriver_alerter.channels import dingtalk, interpret, prepare, slack, webhook
from logriver_alerter.message import AlertMessage, TopMessage
from logriver_alerter.rules import DingTalkChannel, SlackChannel, WebhookChannel
from tests.integration.alerter.receivers import (
    Handler,
    Request,
    block_kit_errors,
    dingtalk_handler,
    webhook_handler,
)

NOW = datetime.now(UTC)
MESSAGE = AlertMessage(
    kind="firing",
    alert_id=7,
    rule_id="r1",
    rule_name="checkout <errors> & more",
    severity="critical",
    labels={"team": "payments"},
    service="checkout",
    condition="error_rate",
    level="ERROR",
    value=0.42,
    threshold=0.05,
    matched=42,
    total=100,
    window_seconds=300,
    top_messages=[TopMessage(message="x" * 500, count=30), TopMessage(message="db down", count=12)],
    sample_trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    started_at=NOW,
    console_url="http://console.test/?service=checkout",
    trace_url="http://console.test/trace.html?trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
)


def as_request(url: str, body: bytes, headers: dict[str, str]) -> Request:
    split = urlsplit(url)
    return Request(
        "POST",
        split.path,
        parse_qs(split.query),
        {k.lower(): v for k, v in headers.items()},
        body,
        time.monotonic(),
    )


def answer(handler: Handler, request: Request) -> tuple[int, bytes]:
    async def call() -> tuple[int, bytes]:
        return await handler(request)

    return asyncio.run(call())


def test_slack_message_is_valid_block_kit_with_a_text_fallback() -> None:
    prepared = slack.prepare(
        SlackChannel.model_validate({"type": "slack", "url": "https://hooks.test/T/B/x"}), MESSAGE
    )
    payload = orjson.loads(prepared.body)
    assert block_kit_errors(payload) == []
    assert payload["text"].startswith(":rotating_light: [FIRING] checkout &lt;errors&gt;")
    assert "42.0%" in payload["text"]
    text = prepared.body.decode()
    assert "db down" in text
    assert "&lt;errors&gt; &amp; more" in text  # mrkdwn escaped
    buttons = next(b for b in payload["blocks"] if b["type"] == "actions")["elements"]
    assert [b["url"] for b in buttons] == [MESSAGE.console_url, MESSAGE.trace_url]


def test_slack_clips_long_titles() -> None:
    long = MESSAGE.model_copy(update={"rule_name": "r" * 400})
    payload = orjson.loads(
        slack.prepare(
            SlackChannel.model_validate({"type": "slack", "url": "https://h.test/"}), long
        ).body
    )
    assert block_kit_errors(payload) == []


def test_dingtalk_signature_is_what_dingtalks_server_accepts() -> None:
    secret = "SEC1f2e3d4c5b6a"
    config = DingTalkChannel.model_validate(
        {
            "type": "dingtalk",
            "url": "https://oapi.dingtalk.test/robot/send?access_token=token",
            "secret": secret,
        }
    )
    prepared = dingtalk.prepare(config, MESSAGE, NOW)
    query = parse_qs(urlsplit(prepared.url).query)
    assert query["timestamp"] == [str(int(NOW.timestamp() * 1000))]
    body = orjson.loads(prepared.body)
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == MESSAGE.title
    assert "db down" in body["markdown"]["text"]
    request = as_request(prepared.url, prepared.body, prepared.headers)
    status, reply = answer(dingtalk_handler(secret), request)
    assert (status, orjson.loads(reply)["errcode"]) == (200, 0)
    status, reply = answer(dingtalk_handler("SECother"), request)
    assert orjson.loads(reply)["errcode"] == 310000
    assert not interpret(config, status, reply).ok


def test_dingtalk_errcodes_decide_retry() -> None:
    assert dingtalk.interpret(200, b'{"errcode": 0, "errmsg": "ok"}').ok
    too_fast = dingtalk.interpret(200, b'{"errcode": 130101, "errmsg": "send too fast"}')
    assert not too_fast.ok
    assert too_fast.retryable
    assert not dingtalk.interpret(200, b'{"errcode": 310000}').retryable
    assert dingtalk.interpret(503, b"").retryable


def test_webhook_is_signed_over_timestamp_and_body() -> None:
    secret = "0123456789abcdef-secret"
    config = WebhookChannel.model_validate(
        {
            "type": "webhook",
            "url": "https://hook.test/x",
            "secret": secret,
            "headers": {"X-Team": "a"},
        }
    )
    prepared = webhook.prepare(config, MESSAGE, NOW)
    assert prepared.headers["X-Team"] == "a"
    assert orjson.loads(prepared.body)["kind"] == "firing"
    request = as_request(prepared.url, prepared.body, prepared.headers)
    assert answer(webhook_handler(secret), request)[0] == 200
    assert answer(webhook_handler("another-secret-123"), request)[0] == 401
    unsigned = webhook.prepare(
        WebhookChannel.model_validate({"type": "webhook", "url": "https://hook.test/x"}),
        MESSAGE,
        NOW,
    )
    assert webhook.SIGNATURE_HEADER not in unsigned.headers


def test_http_replies() -> None:
    config = SlackChannel.model_validate({"type": "slack", "url": "https://h.test/"})
    assert interpret(config, 200, b"ok").ok
    assert interpret(config, 500, b"").retryable
    assert interpret(config, 429, b"").retryable
    refused = interpret(config, 400, b"invalid_blocks")
    assert not refused.retryable
    assert refused.error == "HTTP 400 Bad Request: invalid_blocks"


def test_replies_never_carry_the_receivers_body() -> None:
    """A channel URL may point at an internal API; its answer must not come back."""
    secret_body = b'{"detail": "internal admin token abc123", "rows": [1, 2, 3]}'
    for config in (
        SlackChannel.model_validate({"type": "slack", "url": "https://h.test/"}),
        WebhookChannel.model_validate({"type": "webhook", "url": "https://h.test/"}),
        DingTalkChannel.model_validate(
            {"type": "dingtalk", "url": "https://h.test/?access_token=t", "secret": "s"}
        ),
    ):
        for status in (301, 400, 404, 422, 500, 503):
            reply = interpret(config, status, secret_body)
            assert not reply.ok
            assert reply.error is not None
            assert reply.error.startswith(f"HTTP {status}")
            assert "abc123" not in reply.error, reply.error
            assert "detail" not in reply.error, reply.error
    redirect = interpret(
        WebhookChannel.model_validate({"type": "webhook", "url": "https://h.test/"}), 302, b""
    )
    assert redirect.error is not None
    assert "not followed" in redirect.error
    assert not redirect.retryable
    made_up = dingtalk.interpret(200, b'{"errcode": 7, "errmsg": "internal token abc123"}')
    assert made_up.error is not None
    assert "abc123" not in made_up.error
    assert dingtalk.interpret(200, b'{"errcode": "x"}').error == (
        "DingTalk answered without an errcode"
    )


def test_prepare_dispatches_on_type() -> None:
    prepared = prepare(
        SlackChannel.model_validate({"type": "slack", "url": "https://h.test/"}), MESSAGE, NOW
    )
    assert "blocks" in orjson.loads(prepared.body)
