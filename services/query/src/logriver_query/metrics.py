"""Prometheus metrics and the slow-query log.

Cache hit ratio is ``hits / (hits + misses)`` over
``logriver_query_cache_requests_total``; "coalesced" counts requests that
waited on another request's database query (single-flight) instead of running
their own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("logriver_query.slow")

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_SECONDS = Histogram(
    "logriver_query_request_seconds",
    "HTTP request latency per endpoint (route template)",
    ["endpoint", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
DB_SECONDS = Histogram(
    "logriver_query_db_seconds",
    "MongoDB query latency per query kind",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
)
SLOW_QUERIES = Counter(
    "logriver_query_slow_queries_total", "Queries slower than the slow-query threshold", ["kind"]
)
CACHE_REQUESTS = Counter(
    "logriver_query_cache_requests_total",
    "Aggregation cache lookups by result (hit, miss, coalesced)",
    ["result"],
)


@asynccontextmanager
async def timed_query(kind: str, params: Mapping[str, Any], slow_ms: float) -> AsyncIterator[None]:
    """Observe a database query; log it with its parameters when it is slow."""
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        DB_SECONDS.labels(kind).observe(elapsed)
        if elapsed * 1000 >= slow_ms:
            SLOW_QUERIES.labels(kind).inc()
            log.warning(
                "slow query",
                extra={"query_kind": kind, "params": dict(params), "duration_ms": elapsed * 1000},
            )


class LatencyMiddleware:
    """Per-endpoint latency, labelled by route template (never the raw path: bounded labels)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            REQUEST_SECONDS.labels(_endpoint(scope), scope["method"], str(status)).observe(
                time.perf_counter() - started
            )


def _endpoint(scope: Scope) -> str:
    path = getattr(scope.get("route"), "path", None)
    if not isinstance(path, str):
        return "unmatched"
    return path or "/ (console)"  # the console's static mount at "/" has the empty path
