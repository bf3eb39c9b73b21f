"""observe_many: the same exposition as observing each value in turn."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from logriver_common.histograms import observe_many

BUCKETS = (0.005, 0.05, 0.25, 1.0, 5.0)
values = st.lists(
    st.floats(min_value=0, max_value=1e6, allow_nan=False) | st.sampled_from(BUCKETS),
    max_size=50,
)


def _exposition(observe: str, batches: list[list[float]]) -> dict[str, float]:
    registry = CollectorRegistry()
    histogram = Histogram("lat", "latency", ["transport"], buckets=BUCKETS, registry=registry)
    child = histogram.labels("sse")
    for batch in batches:
        if observe == "each":
            for value in batch:
                child.observe(value)
        else:
            observe_many(child, iter(batch))  # any iterable, read once
    samples: dict[str, float] = {}
    for line in generate_latest(registry).decode().splitlines():
        if not line.startswith("#") and "_created" not in line:
            name, number = line.rsplit(" ", 1)
            samples[name] = float(number)
    return samples


@given(st.lists(values, max_size=4))
def test_observing_a_batch_equals_observing_each_value(batches: list[list[float]]) -> None:
    # Values on a bucket's bound count in that bucket (le is "less than or equal").
    many, each = _exposition("many", batches), _exposition("each", batches)
    total = 'lat_sum{transport="sse"}'
    # The sum may differ in its last bits: a batch is added up before it is added.
    assert math.isclose(many.pop(total), each.pop(total), rel_tol=1e-12)
    assert many == each


def test_a_value_above_every_bound_counts_in_inf() -> None:
    samples = _exposition("many", [[7.0, 0.001]])
    assert samples['lat_bucket{le="0.005",transport="sse"}'] == 1
    assert samples['lat_bucket{le="5.0",transport="sse"}'] == 1
    assert samples['lat_bucket{le="+Inf",transport="sse"}'] == 2
    assert samples['lat_count{transport="sse"}'] == 2
    assert samples['lat_sum{transport="sse"}'] == 7.001
