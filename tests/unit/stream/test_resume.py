"""A resume id is only positions that anyone can write: every one is checked."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndTimestamp

from logriver_stream.replay import ResumeError, resolve_start

TOPIC = "t"
PARTITIONS = [TopicPartition(TOPIC, p) for p in range(3)]
NOW = 1_000_000.0
OLDEST = NOW - 3600


class FakeConsumer:
    """Partition p holds offsets [first[p], last[p]); ``recent[p]`` is the first offset
    stamped at or after OLDEST (None: nothing that recent)."""

    def __init__(self, first: list[int], last: list[int], recent: list[int | None]) -> None:
        self.first, self.last, self.recent = first, last, recent
        self.asked_times: list[int] = []

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.first[tp.partition] for tp in tps}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.last[tp.partition] for tp in tps}

    async def offsets_for_times(
        self, times: dict[TopicPartition, int]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        self.asked_times.extend(times.values())
        out: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        for tp, at in times.items():
            offset = self.recent[tp.partition]
            out[tp] = None if offset is None else OffsetAndTimestamp(offset, at)
        return out


def consumer() -> Any:
    # Partition 0: offsets 0..99, the last hour starts at 40. Partition 1: 10..49,
    # all recent. Partition 2: 0..19, nothing in the last hour.
    return FakeConsumer(first=[0, 10, 0], last=[100, 50, 20], recent=[40, 10, None])


async def start(resume: dict[int, int]) -> dict[int, int]:
    return await resolve_start(consumer(), PARTITIONS, resume=resume, since=None, oldest=OLDEST)


async def test_a_recent_resume_starts_where_it_says() -> None:
    assert await start({0: 60, 1: 10, 2: 20}) == {0: 60, 1: 10, 2: 20}


async def test_partitions_missing_from_the_cursor_start_at_the_limit_not_at_zero() -> None:
    assert await start({1: 30}) == {0: 40, 1: 30, 2: 20}


@pytest.mark.parametrize(
    ("resume", "code", "words"),
    [
        ({}, "invalid_resume", "no partition"),
        ({3: 0}, "invalid_resume", "does not have"),
        ({0: 50, 99: 0}, "invalid_resume", "does not have"),
        ({0: -1}, "invalid_resume", "negative"),
        ({0: 101}, "invalid_resume", "ahead"),
        ({0: 2**63 - 1}, "invalid_resume", "ahead"),
        ({1: 5}, "resume_expired", "retention"),  # partition 1 starts at 10
        # The hand-made cursor of the issue: offset 0 everywhere replays the whole
        # topic; here it would reach past the hour-long `since` limit.
        ({0: 0, 1: 10, 2: 0}, "resume_expired", "replay limit"),
        ({0: 39}, "resume_expired", "replay limit"),
        ({2: 19}, "resume_expired", "replay limit"),  # nothing on 2 is that recent
    ],
)
async def test_bad_positions_are_refused(resume: dict[int, int], code: str, words: str) -> None:
    with pytest.raises(ResumeError) as info:
        await start(resume)
    assert info.value.code == code
    assert words in info.value.detail


async def test_the_limit_is_asked_at_oldest() -> None:
    fake = consumer()
    await resolve_start(fake, PARTITIONS, resume={0: 40}, since=None, oldest=OLDEST)
    assert set(fake.asked_times) == {int(OLDEST * 1000)}


async def test_since_starts_at_the_first_offset_after_it() -> None:
    got = await resolve_start(consumer(), PARTITIONS, resume=None, since=OLDEST, oldest=OLDEST)
    assert got == {0: 40, 1: 10, 2: 20}
