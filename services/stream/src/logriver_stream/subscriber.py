"""One subscriber: its filter and a bounded queue that the hub fills and a writer drains.

The hub never waits for a subscriber: :meth:`Subscriber.offer` is synchronous
and O(batch). When the queue would exceed its bound, the overflow policy
decides: ``skip`` drops the oldest queued events and remembers how many (the
writer sends a ``dropped`` notice before the next events), ``close`` ends the
subscription with ``slow_consumer``. Either way a slow client costs at most
``queue_size`` references to records that are shared with every other client.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from logriver_stream.filters import Filter
from logriver_stream.records import StreamRecord
from logriver_stream.settings import OverflowPolicy


@dataclass(frozen=True, slots=True)
class CloseReason:
    """Why the server ended a subscription: an error code and a human sentence."""

    code: str
    detail: str


@dataclass(slots=True)
class Batch:
    dropped: int
    records: list[StreamRecord]
    lag: int  # queued events when this batch was taken


class Subscriber:
    def __init__(
        self,
        *,
        filter: Filter,
        key_id: str,
        transport: str,
        queue_size: int,
        overflow: OverflowPolicy,
    ) -> None:
        self.filter = filter
        self.key_id = key_id
        self.transport = transport
        self.queue_size = queue_size
        self.overflow = overflow
        # Set by a resume: live records below these offsets were already
        # delivered (by the replay, or by another instance before the client
        # reconnected), so the hub skips them. None once the live position passes it.
        self.floor: dict[int, int] | None = None
        self.closed: CloseReason | None = None
        self.dropped_total = 0
        self._queue: deque[StreamRecord] = deque()
        self._dropped = 0
        self._wakeup = asyncio.Event()
        # The heartbeat deadline (time.monotonic()), the one timer that watches it, and
        # the deadline that timer was armed for.
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = 0.0

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, records: Sequence[StreamRecord]) -> None:
        """Queue matching live records without ever blocking the caller."""
        if self.closed is not None:
            return
        if not records:
            return
        overflow = len(self._queue) + len(records) - self.queue_size
        if overflow > 0:
            if self.overflow is OverflowPolicy.CLOSE:
                self.close(
                    CloseReason(
                        "slow_consumer",
                        f"more than {self.queue_size} events waiting for this client; "
                        "it reads slower than events arrive",
                    )
                )
                return
            # Skip ahead: the oldest events go, the newest stay.
            from_queue = min(overflow, len(self._queue))
            for _ in range(from_queue):
                self._queue.popleft()
            records = records[overflow - from_queue :]
            self._dropped += overflow
            self.dropped_total += overflow
        self._queue.extend(records)
        self._wakeup.set()

    def skip(self, count: int) -> None:
        """Count events this subscriber will not get (its key's regex budget was spent)."""
        if self.closed is not None or count <= 0:
            return
        self._dropped += count
        self.dropped_total += count
        self._wakeup.set()

    def close(self, reason: CloseReason) -> None:
        if self.closed is None:
            self.closed = reason
            self._queue.clear()
            self._wakeup.set()

    def take(self) -> Batch | None:
        """Everything queued (and the pending drop count), or None when there is nothing."""
        if not self._queue and not self._dropped:
            self._wakeup.clear()
            return None
        lag = len(self._queue)
        batch = Batch(self._dropped, list(self._queue), lag)
        self._queue.clear()
        self._dropped = 0
        self._wakeup.clear()
        return batch

    async def wait(self, deadline: float) -> None:
        """Return when something is queued, the subscriber closed, or ``deadline`` (a
        ``time.monotonic()`` value) passed.

        A busy subscriber waits tens of times a second and moves its deadline each time.
        An ``asyncio.timeout`` per wait (a timer scheduled and cancelled each time) was a
        sixth of the stream instance's CPU at 1,000 clients; instead one timer per
        subscriber fires at the deadline it was armed for, and if the deadline has moved
        on since, re-arms for the new one: about one timer per heartbeat interval.
        """
        if self._queue or self._dropped or self.closed is not None:
            return
        delay = deadline - time.monotonic()
        if delay <= 0:
            return
        self._deadline = deadline
        if self._timer is None or deadline < self._armed_for:  # none yet, or too late
            self._arm(delay)
        await self._wakeup.wait()

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = self._deadline
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_deadline)

    def _on_deadline(self) -> None:
        self._timer = None
        delay = self._deadline - time.monotonic()
        if delay > 0:
            self._arm(delay)  # the deadline moved on since this timer was armed
        else:
            self._wakeup.set()

    def stop_timer(self) -> None:
        """Drop the deadline's timer (the session is over): it would keep this object alive."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
