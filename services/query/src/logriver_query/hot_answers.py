"""Cached answers served before routing: this process's copy of its recent cache answers.

Through FastAPI a cached answer cost the query service about 1.2 ms of CPU: routing,
dependency solving, the parameter models, filter parsing, the cache key's hash and a
Redis round trip. With 20 clients on one process that queueing was the ~30 ms median of
every cached endpoint (issue 15). Routes that answer from the aggregation cache put the
answer's bytes here, keyed by path and raw query string, and :class:`HotAnswerMiddleware`
serves a repeat of the same request without routing, parsing or Redis. It runs inside the
request context, connection recycling and latency metric, but in front of error handling
and tracing (``front_middleware``), which cost a hot answer as much again: a hot answer has
no trace span.

What it does not change:

* **Who may read.** An answer is served only to a key that the key store's own cache
  holds as valid, with the ``read`` scope: the same few-second cache every request's
  authentication relies on (a revocation on this instance empties it at once). Any other
  request takes the normal path, which answers 401/403/503 as before.
* **How fresh.** An entry lives no longer than the Redis entry it copies (whose remaining
  TTL the cache reads with the value), and at most ``hot_answer_seconds``.
* **Memory.** At most ``hot_answer_max_bytes`` in total, keys counted with bodies (a
  reader sending long, distinct query strings for small answers must not grow it past
  the bound); least recently used entries go first.

Only a request identical byte for byte (path and query string) is served: parameter order
or spelling differences take the normal path and its normalised cache key.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from logriver_common.auth import ApiKeyStore, presented_key
from logriver_common.auth import Scope as KeyScope
from logriver_query.metrics import CACHE_REQUESTS

Key = tuple[str, bytes]
# What an entry costs besides its key's and body's bytes (tuple, entry, dict slot), roughly.
_ENTRY_OVERHEAD = 200


@dataclass(frozen=True, slots=True)
class _Entry:
    body: bytes
    until: float  # time.monotonic()
    route: Any  # the route that made it: the latency metric's endpoint label
    size: int  # bytes counted against the bound


class HotAnswers:
    """A byte-bounded LRU of answer bodies with an expiry each."""

    def __init__(self, *, max_age_s: float, max_bytes: int) -> None:
        self._max_age_s = max_age_s
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()

    @staticmethod
    def key(scope: Scope) -> Key:
        return scope["path"], scope["query_string"]

    def put(self, scope: Scope, body: bytes, fresh_s: float) -> None:
        """Keep ``body`` as the answer to this request for ``fresh_s`` (capped) seconds."""
        age = min(fresh_s, self._max_age_s)
        key = self.key(scope)
        size = len(body) + len(key[0]) + len(key[1]) + _ENTRY_OVERHEAD
        if age <= 0 or size > self._max_bytes:
            return
        self._drop(key)
        self._entries[key] = _Entry(body, time.monotonic() + age, scope.get("route"), size)
        self._bytes += size
        while self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))

    def get(self, scope: Scope) -> _Entry | None:
        key = self.key(scope)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.until <= time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size


class HotAnswerMiddleware:
    """Answer a repeat of a recently cached request before routing (see the module doc)."""

    def __init__(self, app: ASGIApp, answers: HotAnswers) -> None:
        self.app = app
        self.answers = answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            entry = self.answers.get(scope)
            if entry is not None and _may_read(scope):
                CACHE_REQUESTS.labels("hit").inc()
                scope["route"] = entry.route
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(entry.body)).encode()),
                    (b"x-cache", b"hit"),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": entry.body})
                return
        await self.app(scope, receive, send)


def _may_read(scope: Scope) -> bool:
    """Whether the key store's cache already holds this request's key as valid for reading."""
    plaintext = presented_key(Request(scope))
    store: ApiKeyStore | None = getattr(scope["app"].state, "api_keys", None)
    if plaintext is None or store is None:
        return False
    key = store.remembered(plaintext)
    return key is not None and KeyScope.READ in key.scopes
