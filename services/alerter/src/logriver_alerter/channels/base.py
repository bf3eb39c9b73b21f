"""What every channel produces (a request) and concludes (a reply verdict)."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus


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


def status_text(status_code: int) -> str:
    try:
        return f"HTTP {status_code} {HTTPStatus(status_code).phrase}"
    except ValueError:
        return f"HTTP {status_code}"


def http_reply(status_code: int) -> Reply:
    """The plain HTTP reading: 2xx delivered; 408, 429 and 5xx retried; other 4xx refused.

    The reason is the status only, never the receiver's body: the body of whatever a
    channel URL points at must not come back through the API (or into the database).
    """
    if 200 <= status_code < 300:
        return Reply(ok=True, retryable=False)
    if 300 <= status_code < 400:
        return Reply(
            ok=False,
            retryable=False,
            error=f"{status_text(status_code)}: redirects are not followed; "
            "set the channel URL to the final address",
        )
    retryable = status_code in (408, 425, 429) or status_code >= 500
    return Reply(ok=False, retryable=retryable, error=status_text(status_code))
