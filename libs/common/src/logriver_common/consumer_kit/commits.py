"""Commit tracking: which offsets are done, and the ``{tp: last + 1}`` map to commit.

A consumer marks a record done only after its work is durable (stored, acked,
counted). Offsets never move backwards: a redelivered older record does not
undo progress, and partitions revoked meanwhile are forgotten, because their
new owner re-reads from the last commit (and idempotent ids absorb the overlap).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aiokafka import TopicPartition


class CommitTracker:
    def __init__(self) -> None:
        self._pending: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}

    def done(self, tp: TopicPartition, offset: int) -> None:
        """The record at ``offset`` (and everything before it) is processed."""
        self.advance({tp: offset + 1})

    def advance(self, next_offsets: Mapping[TopicPartition, int]) -> None:
        """Merge ``{tp: next offset}``; an offset never moves backwards."""
        for tp, offset in next_offsets.items():
            if offset > self._pending.get(tp, self.committed.get(tp, -1)):
                self._pending[tp] = offset

    def to_commit(self, owned: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """What to commit now, limited to the partitions this consumer still owns."""
        owned = set(owned)
        return {tp: offset for tp, offset in self._pending.items() if tp in owned}

    def committed_now(self, offsets: Mapping[TopicPartition, int]) -> None:
        """The broker accepted ``offsets``; later marks stay pending."""
        for tp, offset in offsets.items():
            self.committed[tp] = max(self.committed.get(tp, 0), offset)
            if self._pending.get(tp) == offset:
                del self._pending[tp]

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._pending.pop(tp, None)
            self.committed.pop(tp, None)

    @property
    def pending(self) -> dict[TopicPartition, int]:
        return dict(self._pending)
