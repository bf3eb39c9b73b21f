from __future__ import annotations

from aiokafka import TopicPartition

from logriver_writer.batcher import Batcher
from logriver_writer.decode import Accepted, Rejected, RejectReason
from tests.unit.writer.fakes import FakeClock, FakeRecord


def accepted(offset: int, partition: int = 0) -> Accepted:
    record = FakeRecord(b"{}", offset=offset, partition=partition)
    return Accepted(record, {"_id": f"{partition}-{offset}"}, None, None)


def rejected(offset: int, partition: int = 0) -> Rejected:
    return Rejected(FakeRecord(b"x", offset=offset, partition=partition), RejectReason.NOT_JSON, "")


def test_batch_is_ready_when_it_holds_max_events() -> None:
    batcher = Batcher(max_events=3, max_wait_s=60, clock=FakeClock())
    batcher.add(accepted(0))
    batcher.add(accepted(1))
    assert not batcher.ready()
    assert batcher.room == 1
    batcher.add(rejected(2))
    assert batcher.ready()
    assert batcher.full()
    assert batcher.room == 0


def test_batch_is_ready_when_its_oldest_record_waited_max_wait() -> None:
    clock = FakeClock()
    batcher = Batcher(max_events=1000, max_wait_s=0.2, clock=clock)
    assert batcher.remaining_wait() is None
    assert not batcher.ready()  # an empty batch is never due
    batcher.add(accepted(0))
    clock.now += 0.15
    batcher.add(accepted(1))
    assert not batcher.ready()
    assert abs((batcher.remaining_wait() or 0) - 0.05) < 1e-9
    clock.now += 0.05
    assert batcher.ready()


def test_take_returns_commit_offsets_per_partition_and_restarts_the_clock() -> None:
    clock = FakeClock()
    batcher = Batcher(max_events=10, max_wait_s=1, clock=clock)
    for offset in (5, 6, 7):
        batcher.add(accepted(offset, partition=0))
    batcher.add(rejected(41, partition=3))
    batcher.add(accepted(42, partition=3))
    batch = batcher.take()
    assert len(batch) == 5
    assert len(batch.accepted) == 4
    assert len(batch.rejected) == 1
    assert batch.next_offsets == {
        TopicPartition("logs.test", 0): 8,
        TopicPartition("logs.test", 3): 43,
    }
    assert len(batcher) == 0
    assert batcher.remaining_wait() is None
    clock.now += 5
    assert not batcher.ready()


def test_dropping_revoked_partitions_keeps_the_rest() -> None:
    batcher = Batcher(max_events=10, max_wait_s=1, clock=FakeClock())
    batcher.add(accepted(1, partition=0))
    batcher.add(rejected(2, partition=1))
    batcher.add(accepted(3, partition=1))
    batcher.drop_partitions([TopicPartition("logs.test", 1)])
    batch = batcher.take()
    assert [a.record.offset for a in batch.accepted] == [1]
    assert batch.rejected == []
    assert batch.next_offsets == {TopicPartition("logs.test", 0): 2}


def test_dropping_everything_resets_the_age() -> None:
    clock = FakeClock()
    batcher = Batcher(max_events=10, max_wait_s=1, clock=clock)
    batcher.add(accepted(1, partition=2))
    batcher.drop_partitions([TopicPartition("logs.test", 2)])
    clock.now += 10
    assert not batcher.ready()
    assert batcher.remaining_wait() is None


def test_extend_adds_a_partition_run_with_one_offset_update() -> None:
    clock = FakeClock()
    batcher = Batcher(max_events=4, max_wait_s=1, clock=clock)
    tp = TopicPartition("logs.test", 5)
    batcher.extend(tp, [], next_offset=99)
    assert batcher.remaining_wait() is None  # nothing added, the batch is not open
    batcher.extend(tp, [accepted(10, 5), rejected(11, 5), accepted(12, 5)], next_offset=13)
    assert batcher.remaining_wait() == 1
    batcher.add(accepted(13, 5))
    assert batcher.full()
    batch = batcher.take()
    assert [a.record.offset for a in batch.accepted] == [10, 12, 13]
    assert [r.record.offset for r in batch.rejected] == [11]
    assert batch.next_offsets == {tp: 14}
