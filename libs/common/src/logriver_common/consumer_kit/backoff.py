"""Bounded exponential backoff with jitter, for retrying failing infrastructure."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar


class Backoff:
    """Delays ``initial``, ``2*initial``, ... capped at ``maximum``, each with ±20% jitter.

    Jitter keeps several writers from hammering a recovering MongoDB in lockstep.
    """

    def __init__(self, initial: float, maximum: float, *, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = max(maximum, initial)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.attempts = 0

    def next_delay(self) -> float:
        base: float = min(self.initial * 2.0 ** min(self.attempts, 32), self.maximum)
        self.attempts += 1
        return min(base * self._rng.uniform(0.8, 1.2), self.maximum)

    def reset(self) -> None:
        self.attempts = 0


T = TypeVar("T")


async def retry_until_done(
    operation: Callable[[], Awaitable[T]],
    *,
    transient: type[BaseException] | tuple[type[BaseException], ...],
    backoff: Backoff,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Run ``operation`` until it succeeds, sleeping ``backoff`` between ``transient`` errors.

    For failing infrastructure (a broker, a database): the work is retried, never dropped
    or dead-lettered. Any other error propagates, and so does cancellation.
    """
    while True:
        try:
            return await operation()
        except transient as exc:
            delay = backoff.next_delay()
            if on_retry is not None:
                on_retry(exc, delay)
            await asyncio.sleep(delay)
