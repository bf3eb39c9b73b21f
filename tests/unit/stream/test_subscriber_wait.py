"""``Subscriber.wait``: one timer per subscriber follows a deadline that moves on."""

from __future__ import annotations

import asyncio
import time

from logriver_stream.subscriber import Batch, CloseReason, Subscriber
from tests.unit.stream.helpers import record, subscriber

CLOSED_BY_TEST = CloseReason("test", "closed by the test")


async def test_wait_returns_at_the_deadline_when_nothing_comes() -> None:
    sub = subscriber()
    started = time.monotonic()
    await asyncio.wait_for(sub.wait(started + 0.05), timeout=2)
    assert time.monotonic() - started >= 0.05
    assert sub.take() is None


async def test_wait_returns_at_once_for_queued_records_or_a_passed_deadline() -> None:
    sub = subscriber()
    await asyncio.wait_for(sub.wait(time.monotonic() - 1), timeout=0.5)
    sub.offer([record(0, 1)])
    await asyncio.wait_for(sub.wait(time.monotonic() + 60), timeout=0.5)


async def woken_by_a_record(sub: Subscriber, deadline: float) -> Batch | None:
    """Wait until ``deadline``, offer a record meanwhile; the batch the wait woke for."""
    waiting = asyncio.create_task(sub.wait(deadline))
    await asyncio.sleep(0.01)
    sub.offer([record(0, 1)])
    await asyncio.wait_for(waiting, timeout=0.5)
    return sub.take()


async def test_a_record_wakes_the_wait_and_the_old_timer_follows_the_new_deadline() -> None:
    sub = subscriber()
    start = time.monotonic()
    batch = await woken_by_a_record(sub, start + 0.1)
    assert batch is not None
    assert len(batch.records) == 1
    # The deadline moves on after a write: the timer armed for the first one must not
    # end this wait early; it re-arms for the new deadline instead.
    await asyncio.wait_for(sub.wait(start + 0.3), timeout=2)
    assert time.monotonic() - start >= 0.3


async def test_an_earlier_deadline_than_the_armed_one_is_kept() -> None:
    sub = subscriber()
    assert await woken_by_a_record(sub, time.monotonic() + 60) is not None
    await asyncio.wait_for(sub.wait(time.monotonic() + 0.05), timeout=2)


async def test_a_close_wakes_the_wait_and_stop_timer_cancels_the_timer() -> None:
    sub = subscriber()
    waiting = asyncio.create_task(sub.wait(time.monotonic() + 60))
    await asyncio.sleep(0.01)
    assert sub._timer is not None
    sub.close(CLOSED_BY_TEST)
    await asyncio.wait_for(waiting, timeout=0.5)
    sub.stop_timer()
    assert sub._timer is None
