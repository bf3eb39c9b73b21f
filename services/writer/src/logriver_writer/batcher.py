"""Step 2: collect decoded records into a batch, closed by count or by age.

A batch also knows the offsets to commit once it is done: for each partition,
the offset after the last record it holds (``{tp: last_offset + 1}``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from logriver_writer.decode import Accepted, Decoded, Rejected

Clock = Callable[[], float]


@dataclass
class Batch:
    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    # Offset of the next record to consume per partition, i.e. what to commit.
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.accepted) + len(self.rejected)

    def add(self, item: Decoded) -> None:
        record = item.record
        if isinstance(item, Accepted):
            self.accepted.append(item)
        else:
            self.rejected.append(item)
        tp = TopicPartition(record.topic, record.partition)
        # Records of one partition arrive in offset order; max() guards a redelivery overlap.
        self.next_offsets[tp] = max(self.next_offsets.get(tp, 0), record.offset + 1)

    def extend(self, tp: TopicPartition, items: Iterable[Decoded], next_offset: int) -> None:
        """Add one partition's records at once (the hot path: one offset update per fetch)."""
        for item in items:
            if isinstance(item, Accepted):
                self.accepted.append(item)
            else:
                self.rejected.append(item)
        self.next_offsets[tp] = max(self.next_offsets.get(tp, 0), next_offset)

    def without(self, partitions: Iterable[TopicPartition]) -> Batch:
        """This batch minus the records of ``partitions`` (revoked: their new owner reads them)."""
        drop = set(partitions)
        kept = Batch()
        items: list[Decoded] = [*self.accepted, *self.rejected]
        for item in items:
            if TopicPartition(item.record.topic, item.record.partition) not in drop:
                kept.add(item)
        return kept


class Batcher:
    """Accumulates records; ``ready()`` once ``max_events`` are held or the oldest is too old."""

    def __init__(self, *, max_events: int, max_wait_s: float, clock: Clock = time.monotonic):
        self.max_events = max_events
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._batch = Batch()
        self._opened_at: float | None = None

    def __len__(self) -> int:
        return len(self._batch)

    @property
    def room(self) -> int:
        return max(self.max_events - len(self._batch), 0)

    def add(self, item: Decoded) -> None:
        if self._opened_at is None:
            self._opened_at = self._clock()
        self._batch.add(item)

    def extend(self, tp: TopicPartition, items: list[Decoded], next_offset: int) -> None:
        if not items:
            return
        if self._opened_at is None:
            self._opened_at = self._clock()
        self._batch.extend(tp, items, next_offset)

    def full(self) -> bool:
        return len(self._batch) >= self.max_events

    def ready(self) -> bool:
        return self.full() or self.remaining_wait() == 0.0

    def remaining_wait(self) -> float | None:
        """Seconds until the batch is due by age; None while it is empty."""
        if self._opened_at is None:
            return None
        return max(self._opened_at + self.max_wait_s - self._clock(), 0.0)

    def take(self) -> Batch:
        batch, self._batch, self._opened_at = self._batch, Batch(), None
        return batch

    def drop_partitions(self, partitions: Iterable[TopicPartition]) -> None:
        kept = self._batch.without(partitions)
        self._batch = kept
        if not len(kept):
            self._opened_at = None
