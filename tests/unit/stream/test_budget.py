"""The per-key regex budget and where it is charged (compiling and matching)."""

from __future__ import annotations

import asyncio

import pytest

from logriver_stream.budget import RegexBudget
from logriver_stream.cursor import CursorCodec
from logriver_stream.filters import FilterSpec, RegexCompiler
from logriver_stream.hub import Admission, Hub
from logriver_stream.session import StreamContext
from logriver_stream.settings import StreamSettings
from logriver_stream.subscriptions import SubscribeError, compile_filter
from tests.unit.stream.helpers import LIMITS, ManualClock


def test_run_charges_the_key_and_stops_at_the_budget() -> None:
    clock = ManualClock()
    budget = RegexBudget(per_window_s=0.010, window_s=1.0, clock=clock)

    def costly(ms: int) -> int:
        clock.now += ms / 1000
        return ms

    assert budget.run("a", costly, 6) == 6
    assert budget.allows("a")
    assert budget.run("a", costly, 6) == 6  # starts under budget: runs, overshoots once
    assert budget.spent("a") == pytest.approx(0.012)
    assert not budget.allows("a")
    assert budget.run("a", costly, 1) is None  # not run at all
    assert budget.spent("a") == pytest.approx(0.012)
    assert budget.run("b", costly, 1) == 1  # other keys are unaffected
    assert budget.retry_after() == pytest.approx(1.0 - 0.013)
    clock.now = 1.5  # a new window: everyone starts afresh
    assert budget.allows("a")
    assert budget.spent("a") == 0.0


def test_a_failing_match_is_charged_too() -> None:
    clock = ManualClock()
    budget = RegexBudget(per_window_s=0.010, window_s=1.0, clock=clock)

    def boom(_: int) -> int:
        clock.now += 0.020
        raise ValueError("x")

    with pytest.raises(ValueError, match="x"):
        budget.run("a", boom, 0)
    assert not budget.allows("a")


def context(budget: RegexBudget) -> StreamContext:
    codec = CursorCodec("t")
    return StreamContext(
        settings=StreamSettings(),
        hub=Hub(codec, budget),
        admission=Admission(max_total=10, max_per_key=10, max_regex_per_key=10),
        codec=codec,
        partitions=[],
        replays=asyncio.Semaphore(1),
        regexes=RegexCompiler(LIMITS),
    )


def test_compiling_is_charged_and_refused_once_the_key_is_out_of_budget() -> None:
    clock = ManualClock()
    budget = RegexBudget(per_window_s=0.0, window_s=1.0, clock=clock)  # already spent
    ctx = context(budget)
    with pytest.raises(SubscribeError) as info:
        compile_filter(ctx, FilterSpec(regex="new pattern"), "a")
    assert (info.value.status, info.value.code) == (429, "regex_budget_exhausted")
    # No regex, nothing to charge; a pattern already compiled costs nothing either.
    assert compile_filter(ctx, FilterSpec(q="x"), "a").regex is None
    ctx.regexes.compile("cached")
    assert compile_filter(ctx, FilterSpec(regex="cached"), "a").regex is not None


def test_refused_patterns_are_400_invalid_filter() -> None:
    ctx = context(RegexBudget(per_window_s=1.0, window_s=1.0))
    for pattern in ("((a{1,100}){1,100}){1,100}", "(?<=x)y", r"\pL{1000}"):
        with pytest.raises(SubscribeError) as info:
            compile_filter(ctx, FilterSpec(regex=pattern), "a")
        assert (info.value.status, info.value.code) == (400, "invalid_filter")
        assert info.value.detail[0]["param"] == "regex"
