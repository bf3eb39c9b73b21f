"""The per-API-key regex budget: one key's filters cannot slow other keys' clients.

Every subscriber's filter runs on the one event loop that serves every client,
so filter cost is shared. RE2 makes each match linear in the message, but not
free: a short, innocent-looking pattern such as ``a[ab]{300}c`` overflows
RE2's DFA cache and costs tens of milliseconds on a 32 KiB message, and forty
of them cost forty times that. Two bounds keep that cost with the key that
chose it:

* **A cap on regex subscriptions per key** (``regex_max_per_key``, default 10),
  held by :class:`~logriver_stream.hub.Admission`; the next one is refused
  with 429 ``too_many_regex_filters``.
* **A CPU-time budget per key and window** (``regex_budget_ms`` per
  ``regex_budget_window_seconds``, default 50 ms per second): the time spent
  compiling and matching a key's regexes is measured and charged to the key.
  Once a key has spent its budget in the current window, its regex
  subscribers skip the events they would have had to match until the window
  ends; each skipped event is counted in the ``dropped`` notice its client
  receives, exactly like events skipped for a slow reader. New regexes for an
  exhausted key are refused with 429 ``regex_budget_exhausted``.

So, per window, one key can hold the event loop for at most its budget plus
one match (a match already started is not interrupted); the others' events
are delayed by no more than that. Filters without a regex are never charged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

A = TypeVar("A")
T = TypeVar("T")


class RegexBudget:
    """Per-key CPU time for regexes in fixed windows; the clock is injectable for tests."""

    def __init__(
        self,
        *,
        per_window_s: float,
        window_s: float,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.per_window_s = per_window_s
        self.window_s = window_s
        self.clock = clock
        self._window_start = clock()
        self._spent: dict[str, float] = {}

    def _spent_at(self, key_id: str, now: float) -> float:
        if now - self._window_start >= self.window_s:
            self._window_start = now
            self._spent.clear()
        return self._spent.get(key_id, 0.0)

    def allows(self, key_id: str) -> bool:
        """Whether ``key_id`` may spend more regex time in the current window."""
        return self._spent_at(key_id, self.clock()) < self.per_window_s

    def run(self, key_id: str, work: Callable[[A], T], arg: A) -> T | None:
        """``work(arg)`` charged to ``key_id``, or None (not run) when its budget is spent."""
        start = self.clock()
        if self._spent_at(key_id, start) >= self.per_window_s:
            return None
        try:
            return work(arg)
        finally:
            elapsed = max(0.0, self.clock() - start)
            self._spent[key_id] = self._spent.get(key_id, 0.0) + elapsed

    def spent(self, key_id: str) -> float:
        """What ``key_id`` has spent in the current window."""
        return self._spent_at(key_id, self.clock())

    def retry_after(self) -> float:
        """Seconds until the current window ends and every key's budget is fresh."""
        return max(0.0, self._window_start + self.window_s - self.clock())
