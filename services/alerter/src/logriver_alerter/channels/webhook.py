"""Generic JSON webhook, optionally signed.

With a secret, ``X-Logriver-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``
and ``X-Logriver-Timestamp: <unix seconds>``: the timestamp is signed too so
a captured request cannot be replayed later. ``X-Logriver-Notification-Id``
is stable across retries so receivers can drop duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

import orjson

from logriver_alerter.channels.base import Prepared, Reply, http_reply
from logriver_alerter.message import AlertMessage
from logriver_alerter.rules import WebhookChannel

SIGNATURE_HEADER = "X-Logriver-Signature"
TIMESTAMP_HEADER = "X-Logriver-Timestamp"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def payload(message: AlertMessage) -> dict[str, object]:
    return {"version": 1, "title": message.title, **message.model_dump(mode="json")}


def prepare(config: WebhookChannel, message: AlertMessage, now: datetime) -> Prepared:
    body = orjson.dumps(payload(message))
    headers = {**config.headers, "Content-Type": "application/json"}
    if config.secret:
        timestamp = int(now.timestamp())
        headers[TIMESTAMP_HEADER] = str(timestamp)
        headers[SIGNATURE_HEADER] = signature(config.secret, timestamp, body)
    return Prepared(url=str(config.url), body=body, headers=headers)


def interpret(status_code: int) -> Reply:
    return http_reply(status_code)
