"""Channel renderers: each turns an :class:`AlertMessage` into one HTTP request and
judges the receiver's answer. Sending, retrying and recording live in ``delivery``."""

from __future__ import annotations

from datetime import datetime

from logriver_alerter.channels import dingtalk, slack, webhook
from logriver_alerter.channels.base import Prepared, Reply
from logriver_alerter.message import AlertMessage
from logriver_alerter.rules import ChannelConfig, DingTalkChannel, SlackChannel, WebhookChannel


def prepare(config: ChannelConfig, message: AlertMessage, now: datetime) -> Prepared:
    if isinstance(config, SlackChannel):
        return slack.prepare(config, message)
    if isinstance(config, DingTalkChannel):
        return dingtalk.prepare(config, message, now)
    return webhook.prepare(config, message, now)


def interpret(config: ChannelConfig, status_code: int, body: bytes) -> Reply:
    if isinstance(config, DingTalkChannel):
        return dingtalk.interpret(status_code, body)
    if isinstance(config, SlackChannel):
        return slack.interpret(status_code, body)
    return webhook.interpret(status_code)


__all__ = ["Prepared", "Reply", "WebhookChannel", "interpret", "prepare"]
