"""Where a subscription starts, and the replay from Kafka that brings it up to live.

A resume id (or ``since``) names a start position S. The subscriber joins the
hub first, at the live position L, so every live record from L on is queued
for it; then a temporary consumer of its own reads exactly [S[p], L[p]) on
each partition and delivers what matches. When the replay ends the subscriber
has everything below L and its queue holds everything from L: the switch to
live has neither a gap nor an overlap. Where S is ahead of L (the client was
further along on another instance than this instance's source is now), the
hub skips live records below S instead (the subscriber's floor).

Replays are paced by the client: the next fetch waits until the previous
batch was written, so a replay costs bounded memory however far back it goes.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, Callable
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from logriver_stream import metrics
from logriver_stream.cursor import CursorCodec
from logriver_stream.records import BadRecord, StreamRecord, parse_record

_SINCE = re.compile(r"^(\d{1,9})(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_FETCH_TIMEOUT_MS = 500


class ResumeError(Exception):
    """A resume point the server cannot honour; ``code`` goes on the wire."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def parse_since(text: str, *, max_seconds: int, now: float | None = None) -> float:
    """``15m``, ``30s``, ``2h``, ``1d`` or an RFC 3339 time → unix seconds to start from."""
    now = time.time() if now is None else now
    match = _SINCE.match(text)
    if match:
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        start = now - seconds
    else:
        try:
            parsed = datetime.fromisoformat(text) if len(text) <= 64 else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise ValueError("use a duration such as 15m, 30s, 2h, or an RFC 3339 time with offset")
        start = parsed.timestamp()
    if now - start > max_seconds:
        raise ValueError(f"at most {max_seconds} seconds back")
    return min(start, now)


async def resolve_start(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    *,
    resume: dict[int, int] | None,
    since: float | None,
    oldest: float,
) -> dict[int, int]:
    """The start position of a resume or since, checked against the topic's real offsets.

    A resume id is only positions, and anyone can write one, so every position
    is checked: each partition must exist, each offset must lie between the
    partition's log start and its end, and no offset may reach back past
    ``oldest`` (now minus ``max_since_seconds``: a resume replays no further
    than ``since`` could). Partitions the cursor does not name (added to the
    topic after it was issued) start at ``oldest``, never at offset 0.
    """
    begin = await consumer.beginning_offsets(partitions)
    end = await consumer.end_offsets(partitions)
    first = {tp.partition: int(begin[tp]) for tp in partitions}
    last = {tp.partition: int(end[tp]) for tp in partitions}
    if resume is not None:
        if not resume:
            raise ResumeError("invalid_resume", "the resume id names no partition")
        unknown = set(resume) - set(first)
        if unknown:
            raise ResumeError(
                "invalid_resume", "the resume id names partitions this topic does not have"
            )
        if any(offset < 0 for offset in resume.values()):
            raise ResumeError("invalid_resume", "the resume id has a negative offset")
        if any(offset > last[partition] for partition, offset in resume.items()):
            raise ResumeError(
                "invalid_resume",
                "the resume id is ahead of the topic; it was not issued for this topic's data",
            )
        limit = await _offsets_at(consumer, partitions, oldest, last)
        start: dict[int, int] = {}
        for partition in first:
            offset = resume.get(partition)
            if offset is None:
                start[partition] = max(first[partition], limit[partition])
                continue
            if offset < first[partition]:
                raise ResumeError(
                    "resume_expired",
                    "the resume point is older than the topic's retention; events after it "
                    "were deleted. Reconnect without a resume id (or with since=...)",
                )
            if offset < limit[partition]:
                raise ResumeError(
                    "resume_expired",
                    "the resume point is older than the replay limit (the `since` limit); "
                    "reconnect without a resume id (or with since=...)",
                )
            start[partition] = offset
        return start
    assert since is not None  # noqa: S101 - callers pass one of resume and since
    return await _offsets_at(consumer, partitions, since, last)


async def _offsets_at(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], at: float, last: dict[int, int]
) -> dict[int, int]:
    """Per partition, the first offset stamped at or after ``at`` (the end when none is)."""
    found = await consumer.offsets_for_times({tp: int(at * 1000) for tp in partitions})
    return {
        tp.partition: (int(found[tp].offset) if found.get(tp) is not None else last[tp.partition])
        for tp in partitions
    }


async def replay(
    consumer: AIOKafkaConsumer,
    codec: CursorCodec,
    *,
    topic: str,
    start: dict[int, int],
    stop: dict[int, int],
    accept: Callable[[StreamRecord], bool],
    max_records: int,
) -> AsyncGenerator[list[StreamRecord], None]:
    """Matching records in [start, stop) per partition, each with its cursor.

    Yields after every fetch (possibly an empty list) so the caller can send
    heartbeats during a long, selective replay. ``accept`` is the subscriber's
    filter, read on every record so a filter change applies at once.
    """
    position = dict(start)
    todo = {p for p, offset in start.items() if offset < stop.get(p, 0)}
    if not todo:
        return
    assigned = [TopicPartition(topic, p) for p in sorted(todo)]
    consumer.assign(assigned)
    for tp in assigned:
        consumer.seek(tp, start[tp.partition])
    while todo:
        batches = await consumer.getmany(timeout_ms=_FETCH_TIMEOUT_MS, max_records=max_records)
        out: list[StreamRecord] = []
        for tp, messages in batches.items():
            partition = tp.partition
            if partition not in todo:
                continue
            end = stop[partition]
            for message in messages:
                if message.offset >= end:
                    break
                position[partition] = message.offset + 1
                try:
                    record = parse_record(partition, message.offset, message.value)
                except BadRecord as exc:
                    metrics.BAD_RECORDS.labels(exc.reason).inc()
                    continue
                if accept(record):
                    record.cursor = codec.encode(position)
                    out.append(record)
        for tp in assigned:
            partition = tp.partition
            if partition in todo and (
                position[partition] >= stop[partition]
                or await consumer.position(tp) >= stop[partition]
            ):
                position[partition] = stop[partition]
                todo.discard(partition)
                consumer.pause(tp)
        yield out
