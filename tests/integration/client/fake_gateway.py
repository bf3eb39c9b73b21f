"""A scripted stand-in for the gateway's HTTP replies, on loopback in this process.

It lets unit tests drive the client's retry logic (429/503 with Retry-After,
4xx, partial replies) without the real service; the real gateway is exercised
in tests/integration/client.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None  # None: the gateway's 202 body for the events


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    events: list[dict[str, Any]]


Script = Callable[[list[dict[str, Any]]], Reply]


class FakeGateway:
    def __init__(self, port: int = 0) -> None:
        self.replies: deque[Reply | Script] = deque()
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                events = [json.loads(line) for line in raw.splitlines() if line.strip()]
                with gateway.lock:
                    gateway.requests.append(
                        Received(time.monotonic(), dict(self.headers.items()), events)
                    )
                    scripted = gateway.replies.popleft() if gateway.replies else Reply()
                reply = scripted(events) if callable(scripted) else scripted
                body = reply.body
                if body is None:
                    body = {"accepted": len(events), "ids": [e.get("id") for e in events]}
                data = json.dumps(body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def events(self) -> list[dict[str, Any]]:
        """Events of requests that got a 2xx reply would need the reply; tests that
        need "what was accepted" script replies themselves. This is everything received."""
        with self.lock:
            return [e for r in self.requests for e in r.events]

    def start(self) -> FakeGateway:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@contextmanager
def fake_gateway(port: int = 0) -> Iterator[FakeGateway]:
    gateway = FakeGateway(port).start()
    try:
        yield gateway
    finally:
        gateway.stop()


def wait_for(probe: Callable[[], object], within: float = 10.0, what: str = "condition") -> None:
    """Poll a synchronous condition (never a fixed sleep)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.01)
    raise AssertionError(f"{what} not reached within {within}s")
