"""In-memory stand-ins for a Kafka consumer and producer, for unit tests of the loops.

They follow aiokafka's semantics where the loops depend on them: ``getmany``
returns records per partition in offset order from the position, pausing stops
delivery, ``commit`` records offsets, and a producer ack is a future the test
can fail. Integration tests use the real broker; these only make each step
testable on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from logriver_common.consumer_kit.records import Headers, Record


@dataclass(frozen=True, slots=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    timestamp: int = 1_763_700_000_000


@dataclass
class FakeConsumer:
    """One topic's partitions as lists of records; everything assigned to this consumer."""

    records: dict[TopicPartition, list[FakeRecord]] = field(default_factory=dict)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    started: bool = False
    stopped: bool = False
    _paused: set[TopicPartition] = field(default_factory=set)

    def add(self, topic: str, partition: int, *values: bytes | None) -> list[FakeRecord]:
        tp = TopicPartition(topic, partition)
        log = self.records.setdefault(tp, [])
        added = [
            FakeRecord(topic, partition, len(log) + i, value) for i, value in enumerate(values)
        ]
        log.extend(added)
        return added

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        del topics, listener  # every partition added is assigned

    def assignment(self) -> set[TopicPartition]:
        return set(self.records)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[Record]]:
        out: dict[TopicPartition, Sequence[Record]] = {}
        budget = max_records if max_records is not None else 1 << 30
        for tp, log in self.records.items():
            if tp in self._paused or (partitions and tp not in partitions) or budget <= 0:
                continue
            start = self.positions.get(tp, 0)
            chunk = log[start : start + budget]
            if chunk:
                out[tp] = chunk
                self.positions[tp] = start + len(chunk)
                budget -= len(chunk)
        if not out:
            await asyncio.sleep(min(timeout_ms, 10) / 1000)
        return out

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self.commits.append(dict(offsets or {}))

    def pause(self, *partitions: TopicPartition) -> None:
        self._paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._paused.difference_update(partitions)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def committed(self, tp: TopicPartition) -> int | None:
        """The last offset committed for ``tp``, as the broker would answer."""
        for offsets in reversed(self.commits):
            offset = offsets.get(tp)
            if offset is not None:
                return int(offset)
        return None


@dataclass
class FakeProducer:
    """Collects sends; ``fail_next`` makes the next acks raise (a broker error)."""

    sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = field(
        default_factory=list
    )
    fail_next: int = 0
    error: type[Exception] = ConnectionError

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[None]:
        del partition, timestamp_ms
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_next:
            self.fail_next -= 1
            ack.set_exception(self.error("broker unavailable"))
        else:
            self.sent.append((topic, key, value, list(headers or ())))
            ack.set_result(None)
        return ack

    def values(self, topic: str) -> list[bytes | None]:
        return [value for sent_topic, _, value, _ in self.sent if sent_topic == topic]
