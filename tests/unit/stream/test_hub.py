from __future__ import annotations

import pytest

from logriver_stream.cursor import CursorCodec
from logriver_stream.hub import Admission, Hub, TooManySubscribers
from logriver_stream.records import StreamRecord
from logriver_stream.settings import OverflowPolicy
from tests.unit.stream.helpers import make_filter, record, subscriber

CODEC = CursorCodec("t")


def hub_at(position: dict[int, int]) -> Hub:
    hub = Hub(CODEC)
    hub.position.update(position)
    return hub


def items(*records: StreamRecord) -> list[tuple[int, int, StreamRecord | None]]:
    return [(r.partition, r.offset, r) for r in records]


def test_fan_out_by_service_and_shared_records() -> None:
    hub = hub_at({0: 10, 1: 20})
    api, web, everyone = subscriber(service=["api"]), subscriber(service=["web"]), subscriber()
    for s in (api, web, everyone):
        hub.register(s)
    first, second = record(0, 10, service="api"), record(1, 20, service="web")
    hub.publish([*items(first), (0, 11, None), *items(second)])
    assert hub.position == {0: 12, 1: 21}  # bad records advance the position too
    api_batch, web_batch, all_batch = api.take(), web.take(), everyone.take()
    assert api_batch is not None
    assert web_batch is not None
    assert all_batch is not None
    assert api_batch.records == [first]
    assert web_batch.records == [second]
    assert all_batch.records == [first, second]
    assert all_batch.records[0] is api_batch.records[0]  # one record, one cursor, shared
    assert CODEC.decode(first.cursor) == {0: 11, 1: 20}
    assert CODEC.decode(second.cursor) == {0: 12, 1: 21}


def test_filter_change_reindexes() -> None:
    hub = hub_at({0: 0})
    sub = subscriber(service=["api"])
    hub.register(sub)
    hub.set_filter(sub, make_filter(service=["web"]))
    hub.publish(items(record(0, 0, service="api"), record(0, 1, service="web")))
    batch = sub.take()
    assert batch is not None
    assert [r.service for r in batch.records] == ["web"]


def test_floor_skips_what_was_delivered_and_keeps_cursors_monotonic() -> None:
    hub = hub_at({0: 5, 1: 5})
    sub = subscriber()
    hub.register(sub)
    hub.set_floor(sub, {0: 8})  # the client already has partition 0 below 8
    hub.publish(items(record(0, 5), record(1, 5), record(0, 7), record(0, 8)))
    batch = sub.take()
    assert batch is not None
    assert [(r.partition, r.offset) for r in batch.records] == [(1, 5), (0, 8)]
    # The cursor never goes back behind what the client already had.
    assert CODEC.decode(batch.records[0].cursor) == {0: 8, 1: 6}
    assert sub.floor is None  # passed on every partition: back to shared records
    assert CODEC.decode(hub.checkpoint(sub)) == {0: 9, 1: 6}


def test_skip_ahead_keeps_the_newest_and_counts_the_rest() -> None:
    hub = hub_at({0: 0})
    sub = subscriber(queue_size=5)
    hub.register(sub)
    hub.publish(items(*(record(0, i) for i in range(3))))
    hub.publish(items(*(record(0, i) for i in range(3, 8))))
    batch = sub.take()
    assert batch is not None
    assert batch.dropped == 3
    assert [r.offset for r in batch.records] == [3, 4, 5, 6, 7]
    assert sub.dropped_total == 3
    assert sub.take() is None


def test_close_policy_ends_a_slow_subscriber() -> None:
    hub = hub_at({0: 0})
    slow = subscriber(queue_size=2, overflow=OverflowPolicy.CLOSE)
    fast = subscriber(queue_size=100)
    hub.register(slow)
    hub.register(fast)
    hub.publish(items(*(record(0, i) for i in range(3))))
    assert slow.closed is not None
    assert slow.closed.code == "slow_consumer"
    assert len(hub) == 1
    batch = fast.take()
    assert batch is not None
    assert len(batch.records) == 3


def test_runaway_regex_closes_only_its_subscriber() -> None:
    hub = hub_at({0: 0})
    bomb = subscriber(regex=r"(a|aa)+$")
    other = subscriber()
    hub.register(bomb)
    hub.register(other)
    hub.publish(items(record(0, 0, message="a" * 5000 + "!")))
    assert bomb.closed is not None
    assert bomb.closed.code == "regex_timeout"
    batch = other.take()
    assert batch is not None
    assert len(batch.records) == 1


def test_admission_limits_per_key_and_instance() -> None:
    admission = Admission(max_total=3, max_per_key=2)
    admission.acquire("a")
    admission.acquire("a")
    with pytest.raises(TooManySubscribers, match="this API key"):
        admission.acquire("a")
    admission.acquire("b")
    with pytest.raises(TooManySubscribers, match="this stream instance"):
        admission.acquire("c")
    admission.release("a")
    admission.acquire("c")
    assert admission.total == 3
