"""Where the local stack listens, and helpers that poll it (never fixed sleeps)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar


@dataclass(frozen=True)
class Stack:
    kafka: str = "127.0.0.1:9092"
    mongo_uri: str = "mongodb://127.0.0.1:27017,127.0.0.1:27018,127.0.0.1:27019/?replicaSet=rs0"
    redis_url: str = "redis://127.0.0.1:6379/0"
    postgres_dsn: str = "postgresql://logriver:logriver@127.0.0.1:5432/logriver"
    jaeger_query: str = "http://127.0.0.1:16686"
    otlp_grpc: str = "http://127.0.0.1:4317"


STACK = Stack()
# Jaeger is not among them: `make up` builds it in the background (devstack/jaeger.py);
# tests that read traces wait for it with wait_for_jaeger().
_PORTS = [9092, 27017, 27018, 27019, 6379, 5432]
# A cold Jaeger build takes minutes on two cores.
JAEGER_WAIT_S = 900.0

T = TypeVar("T")


def stack_is_up() -> bool:
    return all(_port_open(port) for port in _PORTS)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float = 30.0,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until it returns something other than None/False."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last is not None and last is not False:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not reached within {within}s (last: {last!r})")


async def wait_for_jaeger(within: float = JAEGER_WAIT_S) -> None:
    """Poll Jaeger's query API until it answers (it may still be building)."""
    import httpx

    async def up() -> bool:
        try:
            async with httpx.AsyncClient(base_url=STACK.jaeger_query, timeout=2) as http:
                return (await http.get("/api/services")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(up, within=within, interval=2.0, what="Jaeger (still building?)")
