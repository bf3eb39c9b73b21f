"""Bounded exponential backoff with jitter, for retrying failing infrastructure."""

from __future__ import annotations

import random


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
