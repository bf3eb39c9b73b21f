"""Local HTTP servers standing in for Slack's and DingTalk's servers and a webhook.

A tiny HTTP/1.1 server on asyncio streams, so a test controls every answer,
including one that never comes (a hanging receiver). The Slack and DingTalk
receivers check what the real services check: Block Kit structure and the
text fallback for Slack; the signed-mode timestamp and signature for DingTalk.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when the request arrived

    def json(self) -> Any:
        return orjson.loads(self.body)


Answer = tuple[int, bytes]
Handler = Callable[[Request], Awaitable[Answer]]


@dataclass
class Receiver:
    handler: Handler
    requests: list[Request] = field(default_factory=list)
    accepted: list[Request] = field(default_factory=list)
    server: asyncio.Server | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            # Hanging handlers hold connections open; do not wait for them.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                split = urlsplit(target)
                request = Request(
                    method, split.path, parse_qs(split.query), headers, body, time.monotonic()
                )
                self.requests.append(request)
                status, payload = await self.handler(request)
                if 200 <= status < 300 and _accepted(payload):
                    self.accepted.append(request)
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\n"
                    "Content-Type: application/json\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


def _accepted(payload: bytes) -> bool:
    """DingTalk answers 200 to refusals too; its errcode says whether it was accepted."""
    if payload.startswith(b"{"):
        answer = orjson.loads(payload)
        return not isinstance(answer, dict) or answer.get("errcode", 0) == 0
    return True


# -- Slack ----------------------------------------------------------------------------------

_BLOCK_TYPES = {"header", "section", "actions", "context", "divider"}


def block_kit_errors(payload: Any) -> list[str]:
    """What Slack would reject (``invalid_blocks`` / ``no_text``) in an incoming-webhook body."""
    errors: list[str] = []
    if not isinstance(payload, dict):
        return ["body is not an object"]
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        errors.append("missing text fallback")
    blocks = payload.get("blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return [*errors, "blocks must be a list of 1 to 50"]
    for i, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in _BLOCK_TYPES:
            errors.append(f"block {i}: unknown type {kind!r}")
            continue
        if kind == "header":
            errors += _text(block.get("text"), f"block {i} header", 150, plain_only=True)
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"block {i}: section needs text or fields")
            if "text" in block:
                errors += _text(block["text"], f"block {i} text", 3000)
            fields = block.get("fields", [])
            if len(fields) > 10:
                errors.append(f"block {i}: more than 10 fields")
            for j, item in enumerate(fields):
                errors += _text(item, f"block {i} field {j}", 2000)
        elif kind == "actions":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= 25:
                errors.append(f"block {i}: actions need 1 to 25 elements")
            for j, button in enumerate(elements):
                if button.get("type") != "button":
                    errors.append(f"block {i} element {j}: not a button")
                errors += _text(button.get("text"), f"block {i} button {j}", 75, plain_only=True)
                url = button.get("url", "")
                if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
                    errors.append(f"block {i} button {j}: bad url {url!r}")
        elif kind == "context":
            for j, item in enumerate(block.get("elements", [])):
                errors += _text(item, f"block {i} context {j}", 3000)
    return errors


def _text(obj: Any, where: str, limit: int, *, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"{where}: not a text object"]
    if plain_only and obj["type"] != "plain_text":
        return [f"{where}: must be plain_text"]
    text = obj.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= limit:
        return [f"{where}: text must be 1 to {limit} characters"]
    return []


def slack_handler() -> Handler:
    async def handle(request: Request) -> Answer:
        try:
            payload = request.json()
        except orjson.JSONDecodeError:
            return 400, b"invalid_payload"
        if block_kit_errors(payload):
            return 400, b"invalid_blocks"
        return 200, b"ok"

    return handle


# -- DingTalk -------------------------------------------------------------------------------


def dingtalk_handler(secret: str, access_token: str = "token") -> Handler:  # noqa: S107
    """Verify as DingTalk's server does: the timestamp (ms) within an hour of now, and
    ``sign`` == base64(HMAC-SHA256(key=secret, msg=timestamp + "\\n" + secret))."""

    async def handle(request: Request) -> Answer:
        if request.query.get("access_token") != [access_token]:
            return 200, orjson.dumps({"errcode": 300001, "errmsg": "token is not exist"})
        try:
            timestamp = int(request.query["timestamp"][0])
            presented = request.query["sign"][0]
        except (KeyError, ValueError):
            return 200, orjson.dumps({"errcode": 310000, "errmsg": "sign not match"})
        if abs(time.time() * 1000 - timestamp) > 3600 * 1000:
            return 200, orjson.dumps({"errcode": 310000, "errmsg": "timestamp too far"})
        digest = hmac.new(
            secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256
        ).digest()
        if not hmac.compare_digest(presented, base64.b64encode(digest).decode()):
            return 200, orjson.dumps({"errcode": 310000, "errmsg": "sign not match"})
        body = request.json()
        markdown = body.get("markdown") if isinstance(body, dict) else None
        if (
            body.get("msgtype") != "markdown"
            or not isinstance(markdown, dict)
            or not markdown.get("title")
            or not markdown.get("text")
        ):
            return 200, orjson.dumps({"errcode": 40035, "errmsg": "invalid markdown"})
        return 200, orjson.dumps({"errcode": 0, "errmsg": "ok"})

    return handle


# -- generic webhook ------------------------------------------------------------------------


def webhook_handler(secret: str | None = None) -> Handler:
    async def handle(request: Request) -> Answer:
        if secret is not None:
            timestamp = request.headers.get("x-logriver-timestamp", "")
            mac = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, "sha256")
            expected = f"sha256={mac.hexdigest()}"
            if not hmac.compare_digest(request.headers.get("x-logriver-signature", ""), expected):
                return 401, b'{"error": "bad signature"}'
        return 200, b'{"ok": true}'

    return handle


def failing_handler(status: int = 500) -> Handler:
    async def handle(request: Request) -> Answer:
        return status, b'{"error": "receiver is down"}'

    return handle


def hanging_handler(release: asyncio.Event) -> Handler:
    async def handle(request: Request) -> Answer:
        await release.wait()
        return 200, b"{}"

    return handle
