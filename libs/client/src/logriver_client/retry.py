"""Retry policy shared by the HTTP and Kafka transports.

Delays grow exponentially with full jitter up to a cap, except that a server's
``Retry-After`` is honoured (it knows its own load better than we do), though
also capped so a bogus header cannot park the sender for hours.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_delay: float = 0.2
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    # Transient failures (429, 503, connection errors) are retried until the
    # owner gives up (close/flush deadline); other 5xx only this many times,
    # because a server that fails on one body may fail on it forever.
    max_attempts_server_error: int = 5

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based): full jitter, capped."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** min(attempt - 1, 30)))
        # Jitter spreads clients that failed together; it is not a security measure.
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return self.backoff(attempt)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RetryGate:
    """Lets the owner of a sender cut retries short.

    Transports sleep between attempts through :meth:`sleep`; ``close()`` and
    ``flush()`` set a deadline, which wakes a sleeping sender and makes it stop
    retrying once the deadline passes.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadline: float | None = None

    def give_up_at(self, deadline: float | None) -> None:
        with self._cond:
            self._deadline = deadline
            self._cond.notify_all()

    def expired(self) -> bool:
        deadline = self._deadline
        return deadline is not None and time.monotonic() >= deadline

    def remaining(self) -> float | None:
        deadline = self._deadline
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False when retrying must stop (deadline reached)."""
        end = time.monotonic() + seconds
        with self._cond:
            while True:
                now = time.monotonic()
                deadline = self._deadline
                if deadline is not None and now >= deadline:
                    return False
                if now >= end:
                    return True
                wait = end - now if deadline is None else min(end, deadline) - now
                self._cond.wait(wait)
