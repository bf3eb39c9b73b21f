from __future__ import annotations

from typing import cast

import pytest

from logriver_stream.budget import RegexBudget
from logriver_stream.cursor import CursorCodec
from logriver_stream.filters import Filter
from logriver_stream.hub import Admission, Hub, TooManyRegexFilters, TooManySubscribers
from logriver_stream.records import StreamRecord
from logriver_stream.settings import OverflowPolicy
from logriver_stream.subscriber import Subscriber
from tests.unit.stream.helpers import (
    CostlyFilter,
    ManualClock,
    generous_budget,
    make_filter,
    record,
    subscriber,
)

CODEC = CursorCodec("t")


def hub_at(position: dict[int, int], budget: RegexBudget | None = None) -> Hub:
    hub = Hub(CODEC, budget or generous_budget())
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


def test_backtracking_bomb_is_linear_under_re2() -> None:
    hub = hub_at({0: 0})
    bomb = subscriber(regex=r"(a|aa)+$")
    other = subscriber()
    hub.register(bomb)
    hub.register(other)
    hub.publish(items(record(0, 0, message="a" * 30_000 + "!"), record(0, 1, message="aaa")))
    assert bomb.closed is None
    bomb_batch, other_batch = bomb.take(), other.take()
    assert bomb_batch is not None
    assert other_batch is not None
    assert [r.offset for r in bomb_batch.records] == [1]
    assert len(other_batch.records) == 2


def test_admission_limits_per_key_and_instance() -> None:
    admission = Admission(max_total=3, max_per_key=2, max_regex_per_key=5)
    a1, a2, a3 = (subscriber(key_id="a") for _ in range(3))
    b1, c1, c2 = subscriber(key_id="b"), subscriber(key_id="c"), subscriber(key_id="c")
    admission.acquire(a1)
    admission.acquire(a2)
    with pytest.raises(TooManySubscribers, match="this API key"):
        admission.acquire(a3)
    admission.acquire(b1)
    with pytest.raises(TooManySubscribers, match="this stream instance"):
        admission.acquire(c1)
    admission.release(a1)
    admission.release(a1)  # twice is harmless
    admission.acquire(c1)
    assert admission.total == 3
    assert sorted(admission.key_ids()) == ["a", "b", "c"]
    assert admission.subscribers("a") == [a2]
    admission.release(c2)  # never admitted: nothing changes
    assert admission.total == 3


def test_regex_subscriptions_are_capped_per_key_not_per_instance() -> None:
    admission = Admission(max_total=100, max_per_key=100, max_regex_per_key=2)
    first, second = subscriber(key_id="a", regex="x"), subscriber(key_id="a", regex="y")
    admission.acquire(first)
    admission.acquire(second)
    with pytest.raises(TooManyRegexFilters, match="2 live subscriptions with a regex"):
        admission.acquire(subscriber(key_id="a", regex="z"))
    admission.acquire(subscriber(key_id="a"))  # no regex: not capped
    admission.acquire(subscriber(key_id="b", regex="z"))  # another key: its own cap
    assert admission.regex_count("a") == 2
    # A filter change that adds a regex is checked too; dropping one frees a slot.
    plain = subscriber(key_id="a")
    admission.acquire(plain)
    with pytest.raises(TooManyRegexFilters):
        admission.replace_filter(plain, make_filter(regex="w"))
    admission.replace_filter(first, make_filter(service=["api"]))
    first.filter = make_filter(service=["api"])
    assert admission.regex_count("a") == 1
    admission.replace_filter(plain, make_filter(regex="w"))
    plain.filter = make_filter(regex="w")
    assert admission.regex_count("a") == 2
    admission.release(plain)
    admission.release(second)
    assert admission.regex_count("a") == 0


def _forty_and_one(
    budget: RegexBudget, clock: ManualClock
) -> tuple[Hub, list[Subscriber], Subscriber]:
    hub = hub_at({0: 0}, budget)
    greedy = [subscriber(key_id="A", queue_size=1_000, regex=r"a[ab]{300}c") for _ in range(40)]
    victim = subscriber(key_id="B", queue_size=1_000, regex=r"#\d+$")
    for sub in [*greedy, victim]:
        sub.filter = CostlyFilter(sub.filter, clock, cost=0.001)
        hub.register(sub)
    return hub, greedy, victim


def test_one_keys_forty_regex_subscriptions_do_not_delay_another_key() -> None:
    """The issue's case, deterministically: every regex match costs 1 ms of a fake clock.

    Key A holds forty regex subscriptions, key B one. Without a budget the hub
    spends 41 ms of matching per event, so the last of B's 100 events waits
    4.1 s; with a budget of 200 ms per key and window, A is charged 200 ms,
    B (needing 100 ms) gets every event, and A's clients are told how many
    events they skipped.
    """
    clock = ManualClock()
    budget = RegexBudget(per_window_s=0.200, window_s=1.0, clock=clock)
    hub, greedy, victim = _forty_and_one(budget, clock)
    hub.publish(items(*(record(0, i, message=f"event #{i}") for i in range(100))))

    # The whole publish, i.e. the longest any client waited for it: B's own 100
    # matches plus A's budget.
    assert clock.now == pytest.approx(0.100 + 0.200)
    batch = victim.take()
    assert batch is not None
    assert [r.offset for r in batch.records] == list(range(100))
    assert batch.dropped == 0
    assert budget.spent("A") == pytest.approx(0.200)
    assert budget.spent("B") == pytest.approx(0.100)
    runs = sum(cast(CostlyFilter, sub.filter).runs for sub in greedy)
    assert runs == 200
    dropped = 0
    for sub in greedy:
        got = sub.take()
        assert got is not None
        assert got.records == []
        dropped += got.dropped
    assert dropped == 40 * 100 - runs  # every match A could not afford is reported

    # The next window, A's subscribers match again (within the budget again).
    clock.now += 1.0
    hub.publish(items(record(0, 100, message="a" + "b" * 300 + "c")))
    assert budget.spent("A") == pytest.approx(0.040)
    assert all(len(sub) == 1 for sub in greedy)  # each matched and queued it


def test_without_a_budget_the_same_load_costs_forty_times_more() -> None:
    """The control for the test above: the same subscriptions with an unlimited budget."""
    clock = ManualClock()
    budget = RegexBudget(per_window_s=3600.0, window_s=3600.0, clock=clock)
    hub, _, victim = _forty_and_one(budget, clock)
    hub.publish(items(*(record(0, i, message=f"event #{i}") for i in range(100))))
    assert clock.now == pytest.approx(41 * 100 * 0.001)
    batch = victim.take()
    assert batch is not None
    assert len(batch.records) == 100


def test_filters_without_a_regex_are_never_charged() -> None:
    clock = ManualClock()
    budget = RegexBudget(per_window_s=0.0, window_s=1.0, clock=clock)  # nothing to spend
    hub = hub_at({0: 0}, budget)
    plain = subscriber(key_id="A", q="event")
    regex = subscriber(key_id="A", regex="event")
    hub.register(plain)
    hub.register(regex)
    hub.publish(items(record(0, 0, message="event 1")))
    plain_batch, regex_batch = plain.take(), regex.take()
    assert plain_batch is not None
    assert regex_batch is not None
    assert len(plain_batch.records) == 1
    assert (regex_batch.records, regex_batch.dropped) == ([], 1)


def test_wants_key_drops_only_services_nobody_follows() -> None:
    hub = hub_at({0: 0})
    assert not hub.wants_key(b"api")  # nobody subscribed: everything can be dropped
    api = subscriber(service=["api"])
    hub.register(api)
    assert hub.wants_key(b"api")
    assert not hub.wants_key(b"web")
    assert hub.wants_key(None)  # no key: decode and judge by the body
    assert hub.wants_key(b"\xff\xfe")  # not UTF-8: the decoder judges it
    assert not hub.wants_key(b"x" * 10_000)
    everyone = subscriber()
    hub.register(everyone)
    assert hub.wants_key(b"web")  # a subscriber without a service filter wants all
    hub.unregister(everyone)
    hub.set_filter(api, make_filter(service=["web"]))
    assert hub.wants_key(b"web")
    assert not hub.wants_key(b"api")
    hub.unregister(api)
    assert not hub.wants_key(b"web")


def test_a_forged_key_never_delivers_another_services_event() -> None:
    # A hostile producer keys a "web" event as "api": the key lets it past the drop
    # check, but delivery matches on the decoded event, so api's follower never sees it.
    hub = hub_at({0: 0})
    api = subscriber(service=["api"])
    hub.register(api)
    assert hub.wants_key(b"api")
    hub.publish(items(record(0, 0, service="web")))
    assert api.take() is None
    assert hub.position == {0: 1}


def test_service_only_filters_skip_the_field_check_and_others_keep_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = hub_at({0: 0})
    plain, everyone = subscriber(service=["api"]), subscriber()
    errors_only = subscriber(service=["api"], level="ERROR")
    searching = subscriber(q="boom")
    for s in (plain, everyone, errors_only, searching):
        hub.register(s)
    assert plain.filter.service_only
    assert everyone.filter.service_only
    assert not errors_only.filter.service_only
    assert not searching.filter.service_only
    calls: list[int] = []
    real = Filter.matches_fields

    def counted(self: Filter, record: StreamRecord) -> bool:
        calls.append(1)
        return real(self, record)

    monkeypatch.setattr(Filter, "matches_fields", counted)
    info, error = record(0, 0, level="INFO"), record(0, 1, level="ERROR", message="boom")
    other = record(0, 2, service="web", level="ERROR")
    hub.publish(items(info, error, other))
    assert len(calls) == 2 + 3  # errors_only on the two api records, searching on all three

    def offsets(sub: Subscriber) -> list[int]:
        batch = sub.take()
        assert batch is not None
        return [r.offset for r in batch.records]

    assert offsets(plain) == [0, 1]
    assert offsets(everyone) == [0, 1, 2]
    assert offsets(errors_only) == [1]
    assert offsets(searching) == [1]
