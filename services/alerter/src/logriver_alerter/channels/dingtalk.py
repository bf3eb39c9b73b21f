"""DingTalk custom robot, signed mode, markdown message type.

DingTalk's documented signature: ``sign = urlencode(base64(HMAC-SHA256(key=secret,
msg=f"{timestamp}\\n{secret}")))`` with ``timestamp`` in milliseconds, both sent
as query parameters. DingTalk answers HTTP 200 even when it refuses a message;
the verdict is ``errcode`` in the JSON body (0 means sent).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from urllib.parse import quote_plus

import orjson

from logriver_alerter.channels.base import Prepared, Reply, http_reply
from logriver_alerter.message import AlertMessage
from logriver_alerter.rules import DingTalkChannel

# 130101: "send too fast" (the robot's 20-per-minute limit) is worth retrying later.
_RETRYABLE_ERRCODES = {130101, -1}
# What DingTalk's documented codes mean. Its own errmsg is not passed on: the reply
# comes from whatever the URL points at, and its body must not reach the API.
_ERRCODE_MEANINGS = {
    -1: "system busy",
    130101: "sending too fast",
    300001: "invalid access_token",
    310000: "refused: keyword, signature or IP address check failed",
    400013: "group is disbanded or the robot was removed",
    430101: "message content not allowed",
}


def sign(timestamp_ms: int, secret: str) -> str:
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def markdown(message: AlertMessage) -> str:
    lines = [
        f"### {message.title}",
        f"- **Rule**: {message.rule_name}",
        f"- **Service**: {message.service}",
        f"- **Value**: {message.value_text()}",
        f"- **Window**: {message.window_text()}",
        f"- **Severity**: {message.severity}",
        f"- **Since**: {message.started_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    if message.top_messages:
        lines.append("")
        lines.append("**Top errors**")
        lines.extend(f"1. {t.message[:200]} (x{t.count})" for t in message.top_messages)
    lines.append("")
    links = [f"[Search logs]({message.console_url})"]
    if message.trace_url:
        links.append(f"[Sample trace]({message.trace_url})")
    lines.append(" | ".join(links))
    return "\n".join(lines)


def prepare(config: DingTalkChannel, message: AlertMessage, now: datetime) -> Prepared:
    timestamp_ms = int(now.timestamp() * 1000)
    url = str(config.url)
    separator = "&" if "?" in url else "?"
    signed = f"{url}{separator}timestamp={timestamp_ms}&sign={sign(timestamp_ms, config.secret)}"
    payload = {
        "msgtype": "markdown",
        "markdown": {"title": message.title, "text": markdown(message)},
    }
    return Prepared(
        url=signed,
        body=orjson.dumps(payload),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )


def interpret(status_code: int, body: bytes) -> Reply:
    plain = http_reply(status_code)
    if not plain.ok:
        return plain
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Reply(ok=False, retryable=True, error="DingTalk answered with a non-JSON body")
    errcode = answer.get("errcode") if isinstance(answer, dict) else None
    if errcode == 0:
        return Reply(ok=True, retryable=False)
    if not isinstance(errcode, int) or isinstance(errcode, bool):
        return Reply(ok=False, retryable=True, error="DingTalk answered without an errcode")
    meaning = _ERRCODE_MEANINGS.get(errcode, "see DingTalk's error code list")
    return Reply(
        ok=False,
        retryable=errcode in _RETRYABLE_ERRCODES,
        error=f"DingTalk errcode {errcode}: {meaning}",
    )
