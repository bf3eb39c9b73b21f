"""What a channel may carry, and what the API shows of it.

Header rules: a custom header must not change how the request is framed or
routed (``Content-Length``, ``Transfer-Encoding``, ``Host``, hop-by-hop headers,
``Proxy-*``) nor shadow the headers logriver sets itself; names are HTTP tokens
and values printable ASCII, so no header can smuggle a CR/LF into the request.

Masking: ``GET`` shows a channel with every secret replaced by ``***``: the
Slack hook path, every query-string value (DingTalk's ``access_token``), URL
user info, signing secrets and custom header values. Sending the mask back in
a ``PUT`` keeps the stored value (see :func:`restore`), so a read-modify-write
round trip never overwrites a secret with its mask.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

FRAMING_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
    }
)
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "x-logriver-signature",
        "x-logriver-timestamp",
        "x-logriver-notification-id",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$")
# Visible ASCII with inner spaces or tabs: no CR, LF, NUL or other control characters.
_VALUE = re.compile(r"^(?:[\x21-\x7e](?:[\x20\x09\x21-\x7e]*[\x21-\x7e])?)?$")
MAX_HEADER_VALUE = 4096


def header_problem(name: str, value: str) -> str | None:
    """Why a custom header cannot be sent, or None."""
    if not _TOKEN.match(name):
        return "header names are 1 to 64 HTTP token characters"
    lowered = name.lower()
    if lowered in FRAMING_HEADERS or lowered.startswith("proxy-"):
        return f"{name} is a framing or hop-by-hop header; the HTTP client sets it"
    if lowered in RESERVED_HEADERS:
        return f"{name} is set by logriver"
    if len(value) > MAX_HEADER_VALUE:
        return f"header values are at most {MAX_HEADER_VALUE} characters"
    if not _VALUE.match(value):
        return "header values are printable ASCII without leading or trailing whitespace"
    return None


def header_problems(headers: dict[str, str], loc: list[Any]) -> list[dict[str, Any]]:
    """Field errors, in pydantic's shape, for a channel's custom headers."""
    errors = []
    seen: set[str] = set()
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem is None and name.lower() in seen:
            problem = "header names must be unique regardless of case"
        seen.add(name.lower())
        if problem is not None:
            errors.append({"loc": [*loc, name], "msg": problem, "type": "forbidden_header"})
    return errors


def mask_url(url: str, *, hide_path: bool = False) -> str:
    """The URL with user info, query values and fragment (and the path if asked) masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    path = f"/{MASK}" if hide_path and parts.path not in ("", "/") else parts.path
    query = "&".join(
        f"{pair.partition('=')[0]}={MASK}" if "=" in pair else MASK
        for pair in parts.query.split("&")
        if pair
    )
    fragment = MASK if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def masked(config: dict[str, Any]) -> dict[str, Any]:
    """The API view of a channel config (``model_dump(mode="json")``)."""
    data = dict(config)
    kind = data.get("type")
    if isinstance(data.get("url"), str):
        data["url"] = mask_url(data["url"], hide_path=kind == "slack")
    if data.get("secret"):
        data["secret"] = MASK
    if isinstance(data.get("headers"), dict):
        data["headers"] = dict.fromkeys(data["headers"], MASK)
    return data


def restore(
    new: dict[str, Any], old: dict[str, Any] | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Put stored secrets back where ``new`` holds the mask; errors where nothing to restore.

    ``new`` and ``old`` are ``model_dump(mode="json")`` of the sent and the stored
    config. A mask is restored only from a stored channel of the same type.
    """
    kind = new.get("type")
    same = old if old is not None and old.get("type") == kind else None
    loc: list[Any] = ["body", kind]
    out = dict(new)
    errors: list[dict[str, Any]] = []

    def masked_error(field: list[Any], what: str) -> None:
        errors.append(
            {
                "loc": [*loc, *field],
                "msg": f"{what} holds the mask {MASK!r} but there is no stored value to keep; "
                "send the real value",
                "type": "masked_value",
            }
        )

    url = new.get("url")
    if isinstance(url, str) and MASK in url:
        stored_url = same.get("url") if same is not None else None
        if isinstance(stored_url, str) and url == mask_url(stored_url, hide_path=kind == "slack"):
            out["url"] = stored_url
        else:
            masked_error(["url"], "url")
    if new.get("secret") == MASK:
        stored_secret = same.get("secret") if same is not None else None
        if stored_secret:
            out["secret"] = stored_secret
        else:
            masked_error(["secret"], "secret")
    headers = new.get("headers")
    if isinstance(headers, dict) and MASK in headers.values():
        stored_headers = same.get("headers") if same is not None else None
        stored = {k.lower(): v for k, v in (stored_headers or {}).items()}
        restored = {}
        for name, value in headers.items():
            if value == MASK and name.lower() in stored:
                restored[name] = stored[name.lower()]
            elif value == MASK:
                masked_error(["headers", name], f"header {name}")
            else:
                restored[name] = value
        out["headers"] = restored
    return out, errors
