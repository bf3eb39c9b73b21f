"""Revocation: one task rechecks the keys of open streams and ends a revoked key's streams."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

import asyncpg

from logriver_common.auth import ApiKeyStore
from logriver_stream.cursor import CursorCodec
from logriver_stream.hub import Admission, Hub
from logriver_stream.keywatch import KeyWatch
from tests.stack import eventually
from tests.unit.stream.helpers import generous_budget, record, subscriber


class FakeStore:
    def __init__(self, active: set[str]) -> None:
        self.active = active
        self.queries: list[set[str]] = []
        self.fail: BaseException | None = None

    async def active_ids(self, key_ids: Collection[str]) -> set[str]:
        self.queries.append(set(key_ids))
        if self.fail is not None:
            raise self.fail
        return self.active & set(key_ids)


def setup(store: FakeStore) -> tuple[Hub, Admission, KeyWatch]:
    hub = Hub(CursorCodec("t"), generous_budget())
    hub.position[0] = 0
    admission = Admission(max_total=100, max_per_key=100, max_regex_per_key=10)
    watch = KeyWatch(cast(ApiKeyStore, store), admission, hub, interval_s=0.01)
    return hub, admission, watch


async def test_a_revoked_keys_streams_end_in_one_query_and_others_go_on() -> None:
    store = FakeStore({"a", "b"})
    hub, admission, watch = setup(store)
    subs = {key: [subscriber(key_id=key) for _ in range(3)] for key in ("a", "b")}
    pending = subscriber(key_id="a")  # admitted, still replaying: not in the hub yet
    for sub in [*subs["a"], *subs["b"], pending]:
        admission.acquire(sub)
    for sub in [*subs["a"], *subs["b"]]:
        hub.register(sub)

    assert await watch.check_once() == set()
    store.active = {"b"}  # "a" is revoked
    assert await watch.check_once() == {"a"}
    assert store.queries == [{"a", "b"}, {"a", "b"}]  # one query per round, not per stream
    for sub in [*subs["a"], pending]:
        assert sub.closed is not None
        assert sub.closed.code == "key_revoked"
    assert all(sub.closed is None for sub in subs["b"])
    assert len(hub) == 3
    hub.publish([(0, 0, record(0, 0))])
    assert all(len(sub) == 1 for sub in subs["b"])


async def test_nothing_open_means_no_query() -> None:
    store = FakeStore(set())
    _, _, watch = setup(store)
    assert await watch.check_once() == set()
    assert store.queries == []


async def test_the_loop_survives_database_errors_and_keeps_checking() -> None:
    store = FakeStore({"a"})
    _, admission, watch = setup(store)
    sub = subscriber(key_id="a")
    admission.acquire(sub)
    store.fail = cast(Any, asyncpg.PostgresConnectionError("down"))
    watch.start()
    try:
        await eventually(
            lambda: _async(len(store.queries) >= 2), within=5, interval=0.01, what="retries"
        )
        assert sub.closed is None  # a database blip does not end streams
        store.fail = RuntimeError("unexpected")
        queries = len(store.queries)
        await eventually(lambda: _async(len(store.queries) >= queries + 2), within=5, interval=0.01)
        store.fail = None
        store.active = set()
        await eventually(lambda: _async(sub.closed is not None), within=5, interval=0.01)
    finally:
        await watch.stop()
    await watch.stop()  # idempotent


async def _async(value: bool) -> bool:
    return value
