"""The session's live path against a fake transport (replays are covered by integration)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from logriver_stream.cursor import CursorCodec
from logriver_stream.hub import Admission, Hub
from logriver_stream.records import StreamRecord
from logriver_stream.replay import parse_since
from logriver_stream.session import Session, StreamContext
from logriver_stream.settings import StreamSettings
from logriver_stream.sse import dropped_frame, error_frame, heartbeat_frame, open_frame
from logriver_stream.subscriber import CloseReason
from tests.stack import eventually
from tests.unit.stream.helpers import COMPILER, generous_budget, record, subscriber


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []

    async def open(self, cursor: str) -> None:
        self.sent.append(("open", cursor))

    async def records(self, records: Sequence[StreamRecord]) -> None:
        self.sent.extend(("log", r.offset) for r in records)

    async def dropped(self, count: int) -> None:
        self.sent.append(("dropped", count))

    async def heartbeat(self, cursor: str | None) -> None:
        self.sent.append(("ping", cursor))

    async def end(self, reason: CloseReason) -> None:
        self.sent.append(("end", reason.code))


def context(hub: Hub, admission: Admission) -> StreamContext:
    return StreamContext(
        settings=StreamSettings(heartbeat_seconds=0.05),
        hub=hub,
        admission=admission,
        codec=hub.codec,
        partitions=[],
        replays=asyncio.Semaphore(1),
        regexes=COMPILER,
    )


async def test_live_session_sends_events_drops_heartbeats_and_reason() -> None:
    codec = CursorCodec("t")
    hub = Hub(codec, generous_budget())
    hub.position.update({0: 0, 1: 0})
    admission = Admission(max_total=10, max_per_key=10, max_regex_per_key=1)
    sub = subscriber(queue_size=3, service=["api"])
    admission.acquire(sub)
    session = Session(context(hub, admission), sub)
    out = Recorder()
    task = asyncio.create_task(session.run(out))

    async def sent_count(n: int) -> bool:
        return len(out.sent) >= n

    await eventually(lambda: sent_count(1), within=5, interval=0.01, what="open")
    assert out.sent[0] == ("open", codec.encode({0: 0, 1: 0}))
    hub.publish([(0, i, record(0, i)) for i in range(5)])  # 2 more than the queue holds
    await eventually(lambda: sent_count(5), within=5, interval=0.01, what="delivery")
    assert out.sent[1:5] == [("dropped", 2), ("log", 2), ("log", 3), ("log", 4)]
    # Idle: a heartbeat that moves the resume point to everything processed so far.
    hub.publish([(1, 0, record(1, 0, service="web"))])
    await eventually(lambda: sent_count(6), within=5, interval=0.01, what="heartbeat")
    assert out.sent[5] == ("ping", codec.encode({0: 5, 1: 1}))
    sub.close(CloseReason("slow_consumer", "too slow"))
    await asyncio.wait_for(task, 5)
    assert out.sent[-1] == ("end", "slow_consumer")
    await session.close()
    await session.close()  # idempotent
    assert admission.total == 0
    assert len(hub) == 0


def test_sse_frames() -> None:
    assert open_frame("C", 2000) == b": open\nretry: 2000\nid: C\n\n"
    assert dropped_frame(7) == b'event: dropped\ndata: {"dropped": 7}\n\n'
    assert heartbeat_frame(None) == b": ping\n\n"
    assert heartbeat_frame("C") == b": ping\nid: C\n\n"
    assert error_frame("resume_expired", "gone") == (
        b'event: error\ndata: {"error":"resume_expired","detail":"gone"}\n\n'
    )


@pytest.mark.parametrize(
    ("text", "seconds"), [("15m", 900), ("30s", 30), ("2h", 7200), ("1d", 86400)]
)
def test_since_durations(text: str, seconds: int) -> None:
    assert parse_since(text, max_seconds=86400, now=10_000_000.0) == 10_000_000.0 - seconds


@pytest.mark.parametrize("text", ["15", "m", "-5m", "yesterday", "2026-01-01T00:00:00", "9999d"])
def test_bad_since_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"use a duration|at most"):
        parse_since(text, max_seconds=86400, now=10_000_000.0)
