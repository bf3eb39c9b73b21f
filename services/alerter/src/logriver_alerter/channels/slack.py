"""Slack incoming webhook: Block Kit blocks with a plain-text fallback.

Slack shows ``text`` in notifications and where blocks cannot render, so it
carries the whole story in one line; the blocks carry the detail and links.
Limits respected: header text 150 chars, section text 3000, field text 2000.
"""

from __future__ import annotations

from typing import Any

import orjson

from logriver_alerter.channels.base import Prepared, Reply, http_reply
from logriver_alerter.message import AlertMessage
from logriver_alerter.rules import SlackChannel

# Slack's documented incoming-webhook error bodies. Only these are passed on: any other
# body could be anything the URL points at, and must not reach the API.
KNOWN_ERRORS = frozenset(
    {
        "invalid_payload",
        "invalid_blocks",
        "invalid_blocks_format",
        "no_text",
        "user_not_found",
        "channel_not_found",
        "channel_is_archived",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "too_many_attachments",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "invalid_token",
    }
)

_EMOJI = {
    "firing": ":rotating_light:",
    "reminder": ":bell:",
    "resolved": ":white_check_mark:",
    "test": ":test_tube:",
}


def _escape(text: str) -> str:
    # Slack's mrkdwn needs only these three escaped.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def blocks(message: AlertMessage) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(message.title, 150), "emoji": True},
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Rule*\n{_escape(message.rule_name)}"},
                {"type": "mrkdwn", "text": f"*Service*\n`{_escape(message.service)}`"},
                {"type": "mrkdwn", "text": f"*Value*\n{_escape(message.value_text())}"},
                {"type": "mrkdwn", "text": f"*Window*\n{message.window_text()}"},
                {"type": "mrkdwn", "text": f"*Severity*\n{message.severity}"},
                {"type": "mrkdwn", "text": f"*Since*\n{message.started_at:%Y-%m-%d %H:%M:%S} UTC"},
            ],
        },
    ]
    if message.top_messages:
        lines = "\n".join(
            f"• {_escape(_clip(t.message, 200))} (x{t.count})" for t in message.top_messages
        )
        out.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip(f"*Top errors*\n{lines}", 3000)},
            }
        )
    buttons: list[dict[str, Any]] = [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": "Search logs"},
            "url": message.console_url,
        }
    ]
    if message.trace_url:
        buttons.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Sample trace in Jaeger"},
                "url": message.trace_url,
            }
        )
    out.append({"type": "actions", "elements": buttons})
    if message.labels:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(message.labels.items()))
        out.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": _clip(_escape(labels), 3000)}],
            }
        )
    return out


def fallback_text(message: AlertMessage) -> str:
    return (
        f"{_EMOJI[message.kind]} {_escape(message.title)}: {_escape(message.value_text())} "
        f"over {message.window_text()} <{message.console_url}|search logs>"
    )


def prepare(config: SlackChannel, message: AlertMessage) -> Prepared:
    payload = {"text": fallback_text(message), "blocks": blocks(message)}
    return Prepared(
        url=str(config.url),
        body=orjson.dumps(payload),
        headers={"Content-Type": "application/json"},
    )


def interpret(status_code: int, body: bytes) -> Reply:
    reply = http_reply(status_code)
    code = body[:64].decode("ascii", "replace").strip()
    if reply.ok or code not in KNOWN_ERRORS:
        return reply
    return Reply(ok=False, retryable=reply.retryable, error=f"{reply.error}: {code}")
