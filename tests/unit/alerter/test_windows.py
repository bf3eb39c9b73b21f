"""Sliding sums over one-second buckets agree with summing the buckets directly."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from logriver_alerter.windows import N_LEVELS, ServiceWindow, matched_and_total


def brute(events: list[tuple[int, int]], length: int, end: int) -> list[int]:
    counts = [0] * N_LEVELS
    for second, level in events:
        if end - length < second <= end:
            counts[level] += 1
    return counts


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 120), st.integers(0, 4)), max_size=200),
    st.lists(st.integers(1, 130), min_size=1, max_size=30),
    st.sampled_from([1, 5, 30, 60]),
)
def test_sliding_sum_matches_brute_force(
    events: list[tuple[int, int]], ends: list[int], length: int
) -> None:
    window = ServiceWindow()
    seen: list[tuple[int, int]] = []
    rng = random.Random(len(events))
    pending = list(events)
    for end in sorted(ends):
        # Interleave arrivals (some late, some ahead of the window) with evaluations.
        for _ in range(rng.randint(0, len(pending))):
            second, level = pending.pop()
            window.add(second, level)
            seen.append((second, level))
        assert window.counts(length, end) == brute(seen, length, end)


@settings(max_examples=200, deadline=None)
@given(
    # Narrow ranges, so that events land on, just before and just after the sums' ends.
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 4)), max_size=60),
    st.lists(
        st.tuples(st.sampled_from([1, 2, 5, 30]), st.integers(0, 22)), min_size=1, max_size=30
    ),
)
def test_several_window_lengths_and_ends_in_any_order_match_brute_force(
    events: list[tuple[int, int]], evaluations: list[tuple[int, int]]
) -> None:
    """Events after every sum's end skip the sums (``summed_to``); ends that move back
    and lengths that are summed at different ends must not make one count go missing."""
    window = ServiceWindow()
    seen: list[tuple[int, int]] = []
    rng = random.Random(len(events) + len(evaluations))
    pending = list(events)
    for length, end in evaluations:
        for _ in range(rng.randint(0, len(pending))):
            second, level = pending.pop()
            window.add(second, level)
            seen.append((second, level))
        assert window.counts(length, end) == brute(seen, length, end)


def test_prune_forgets_old_buckets_and_a_window_recomputes() -> None:
    window = ServiceWindow()
    for second in range(100):
        window.add(second, 3)
        window.sample(second, 3, f"m{second % 2}", "ab" * 16 if second == 99 else None)
    assert window.counts(10, 99) == [0, 0, 0, 10, 0]
    window.prune(90)
    assert min(window.buckets) == 90
    assert window.counts(10, 99) == [0, 0, 0, 10, 0]
    assert window.counts(20, 99) == [0, 0, 0, 10, 0]  # what was pruned is gone
    top, trace = window.top_messages(3, 89, 99)
    assert sorted(top) == [("m0", 5), ("m1", 5)]
    assert trace == "ab" * 16


def test_samples_keep_only_warning_and_above() -> None:
    window = ServiceWindow()
    window.sample(1, 1, "info", None)
    window.sample(1, 2, "warn", None)
    window.sample(1, 4, "boom", None)
    assert window.top_messages(2, 0, 1)[0] == [("warn", 1), ("boom", 1)]
    assert window.top_messages(3, 0, 1)[0] == [("boom", 1)]


def test_matched_and_total_count_at_or_above_a_level() -> None:
    assert matched_and_total([1, 2, 3, 4, 5], 3) == (9, 15)
