"""Observing many values in a Prometheus histogram at once.

The writer observes the ingest-to-stored latency of every event it stores, and each
stream session the delivery latency of every event it sends. `Histogram.observe` per
value takes two locks and walks the bucket list: 0.75 µs per value measured, and py-spy
put the writer's observations at 6% of its samples. :func:`observe_many` counts a
batch's values per bucket first and then adds each count once (0.09 µs per value).
prometheus_client has no weighted observe, so this uses its buckets directly; a unit
test holds it to `observe()` of the same values.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client import Histogram


def observe_many(histogram: Histogram, values: Iterable[float]) -> None:
    """The same as ``for v in values: histogram.observe(v)`` for values that are not NaN."""
    bounds: list[float] = histogram._upper_bounds
    counts = [0] * len(bounds)
    total = 0.0
    for value in values:
        total += value
        counts[bisect_left(bounds, value)] += 1  # the first bound >= value; the last is +Inf
    if not any(counts):
        return
    histogram._sum.inc(total)
    buckets = histogram._buckets
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
