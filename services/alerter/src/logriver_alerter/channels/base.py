"""What every channel produces (a request) and concludes (a reply verdict)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Prepared:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Reply:
    ok: bool
    # Worth another attempt: the receiver was overloaded or failing, not refusing the message.
    retryable: bool
    error: str | None = None


def http_reply(status_code: int, body: bytes) -> Reply:
    """The plain HTTP reading: 2xx delivered; 408, 429 and 5xx retried; other 4xx refused."""
    if 200 <= status_code < 300:
        return Reply(ok=True, retryable=False)
    text = body[:300].decode("utf-8", "replace")
    retryable = status_code in (408, 425, 429) or status_code >= 500
    return Reply(ok=False, retryable=retryable, error=f"HTTP {status_code}: {text}")
