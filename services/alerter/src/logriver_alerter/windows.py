"""Per-service event counts in one-second buckets of event time, with sliding sums.

A rule asks "how many events, and how many at or above a level, in the last W
seconds up to the watermark". Re-summing W buckets for every rule and service
on every tick would be O(W); instead each window length keeps a running sum
that is moved forward bucket by bucket, and an event that lands inside an
already-summed range is added to it directly.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from logriver_common.documents import LEVELS

N_LEVELS = len(LEVELS)
MESSAGE_LEVEL = LEVELS.index("WARNING")  # sample messages only from WARNING up
MAX_SAMPLES = 1000
MAX_MESSAGE_CHARS = 300


@dataclass(slots=True)
class SlidingSum:
    """Counts per level over the seconds ``(end - length, end]``."""

    length: int
    end: int | None = None
    counts: list[int] = field(default_factory=lambda: [0] * N_LEVELS)


@dataclass(frozen=True, slots=True)
class Sample:
    second: int
    level: int
    message: str
    trace_id: str | None
    span_id: str | None = None


class ServiceWindow:
    """All that evaluation needs to know about one service's recent events."""

    def __init__(self) -> None:
        self.buckets: dict[int, list[int]] = {}
        self.sums: dict[int, SlidingSum] = {}
        self.samples: deque[Sample] = deque(maxlen=MAX_SAMPLES)
        # No sliding sum ends after this second: an event after it is in none of them.
        # Events arrive seconds ahead of the watermark the sums end at, so most skip the
        # loop over every window length the rules use.
        self.summed_to: int | None = None

    def add(self, second: int, level: int, n: int = 1) -> None:
        bucket = self.buckets.get(second)
        if bucket is None:
            bucket = self.buckets[second] = [0] * N_LEVELS
        bucket[level] += n
        if self.summed_to is None or second > self.summed_to:
            return
        for window in self.sums.values():
            if window.end is not None and window.end - window.length < second <= window.end:
                window.counts[level] += n

    def sample(
        self,
        second: int,
        level: int,
        message: str,
        trace_id: str | None,
        span_id: str | None = None,
    ) -> None:
        if level >= MESSAGE_LEVEL:
            message = message[:MAX_MESSAGE_CHARS]
            self.samples.append(Sample(second, level, message, trace_id, span_id))

    def counts(self, length: int, end: int) -> list[int]:
        """Counts per level in ``(end - length, end]``; ``end`` normally only moves forward."""
        window = self.sums.get(length)
        if window is None:
            window = self.sums[length] = SlidingSum(length)
        if window.end is None or end < window.end or end - window.end >= length:
            window.counts = [0] * N_LEVELS
            for second in range(end - length + 1, end + 1):
                self._add_bucket(window.counts, second, 1)
        else:
            for second in range(window.end + 1, end + 1):
                self._add_bucket(window.counts, second, 1)
                self._add_bucket(window.counts, second - length, -1)
        window.end = end
        if self.summed_to is None or end > self.summed_to:
            self.summed_to = end
        return window.counts

    def _add_bucket(self, counts: list[int], second: int, sign: int) -> None:
        bucket = self.buckets.get(second)
        if bucket is not None:
            for i, n in enumerate(bucket):
                counts[i] += sign * n

    def top_messages(
        self, min_level: int, start: int, end: int, limit: int = 5
    ) -> tuple[list[tuple[str, int]], str | None]:
        """The most frequent messages at or above ``min_level`` in ``(start, end]``,
        and the trace id of the most recent one that has a trace."""
        counter: Counter[str] = Counter()
        trace_id = None
        for sample in self.samples:
            if sample.level >= min_level and start < sample.second <= end:
                counter[sample.message] += 1
                if sample.trace_id:
                    trace_id = sample.trace_id
        return counter.most_common(limit), trace_id

    def traced_sample(self, min_level: int, start: int, end: int) -> Sample | None:
        """The most recent sample at or above ``min_level`` in ``(start, end]`` that carries a
        whole trace context (trace and span id), to parent the alert's span to it."""
        for sample in reversed(self.samples):
            if (
                sample.trace_id
                and sample.span_id
                and sample.level >= min_level
                and start < sample.second <= end
            ):
                return sample
        return None

    def prune(self, before: int) -> None:
        """Forget buckets no window can reach any more (seconds ``< before``)."""
        for second in [s for s in self.buckets if s < before]:
            del self.buckets[second]
        while self.samples and self.samples[0].second < before:
            self.samples.popleft()
        for length, window in list(self.sums.items()):
            # A window whose bucket range was pruned is recomputed on its next use.
            if window.end is not None and window.end - length + 1 < before:
                del self.sums[length]

    @property
    def empty(self) -> bool:
        return not self.buckets


def matched_and_total(counts: list[int], level: int) -> tuple[int, int]:
    return sum(counts[level:]), sum(counts)
