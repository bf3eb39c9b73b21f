"""One subscription from its start (live, resume or since) to its end, for any transport.

A transport (SSE or WebSocket) supplies an :class:`Outbound`; the session
decides what to send and when: the opening cursor, the replay, then live
batches, ``dropped`` notices and heartbeats, and finally why it ended.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from logriver_common.histograms import observe_many
from logriver_stream import metrics
from logriver_stream.cursor import CursorCodec
from logriver_stream.filters import RegexCompiler
from logriver_stream.hub import Admission, Hub
from logriver_stream.records import StreamRecord
from logriver_stream.replay import replay, resolve_start
from logriver_stream.settings import StreamSettings
from logriver_stream.source import consumer_for
from logriver_stream.subscriber import CloseReason, Subscriber

SHUTTING_DOWN = CloseReason("shutting_down", "the stream instance is shutting down; reconnect")


class Outbound(Protocol):
    """What a transport can send. Every call may block on a slow client (with a timeout)."""

    async def open(self, cursor: str) -> None: ...

    async def records(self, records: Sequence[StreamRecord]) -> None: ...

    async def dropped(self, count: int) -> None: ...

    async def heartbeat(self, cursor: str | None) -> None: ...

    async def end(self, reason: CloseReason) -> None: ...


@dataclass
class StreamContext:
    """Everything a session needs from the instance (kept on ``app.state.stream``)."""

    settings: StreamSettings
    hub: Hub
    admission: Admission
    codec: CursorCodec
    partitions: list[TopicPartition]
    replays: asyncio.Semaphore
    regexes: RegexCompiler


class Session:
    def __init__(self, ctx: StreamContext, subscriber: Subscriber) -> None:
        self._ctx = ctx
        self.subscriber = subscriber
        self._start: dict[int, int] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._holds_replay_slot = False
        self._closed = False
        # Labelled children looked up once: per write they cost more than the observation.
        transport = subscriber.transport
        self._delivered = metrics.DELIVERED.labels(transport)
        self._latency = metrics.LATENCY.labels(transport)
        self._lag = metrics.LAG.labels(transport)
        self._dropped = metrics.DROPPED.labels(transport)

    async def prepare(self, *, resume: dict[int, int] | None, since: float | None) -> None:
        """Resolve a resume or since against the topic; raises ``ResumeError``.

        Runs before the transport answers, so an expired or impossible resume
        point is reported before any event is sent. Replays are limited per
        instance (each holds a Kafka consumer); a client waits for a slot.
        """
        if resume is None and since is None:
            return
        await self._ctx.replays.acquire()
        self._holds_replay_slot = True
        consumer = consumer_for(self._ctx.settings)
        await consumer.start()
        self._consumer = consumer  # stopped by close(), whatever happens next
        self._start = await resolve_start(
            self._consumer,
            self._ctx.partitions,
            resume=resume,
            since=since,
            oldest=time.time() - self._ctx.settings.max_since_seconds,
        )

    async def close(self) -> None:
        """Release everything; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._ctx.hub.unregister(self.subscriber)
        self.subscriber.stop_timer()
        await self._release_replay()
        self._ctx.admission.release(self.subscriber)

    async def _release_replay(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        if self._holds_replay_slot:
            self._holds_replay_slot = False
            self._ctx.replays.release()

    async def run(self, out: Outbound) -> None:
        ctx, sub = self._ctx, self.subscriber
        if (ended := sub.closed) is not None:  # ended before it started (key revoked)
            metrics.CLOSED.labels(ended.code).inc()
            await out.end(ended)
            return
        heartbeat = ctx.settings.heartbeat_seconds
        live_at = ctx.hub.register(sub)
        start = self._start
        if start is not None:
            floor = {p: o for p, o in start.items() if o > live_at.get(p, 0)}
            if floor:
                ctx.hub.set_floor(sub, floor)
            last_id = ctx.codec.encode(start)
        else:
            last_id = ctx.codec.encode(live_at)
        await out.open(last_id)
        next_beat = time.monotonic() + heartbeat
        if start is not None and self._consumer is not None:
            skipped = 0

            def accept(record: StreamRecord) -> bool:
                # The same rule as live: only the regex is charged to the key's budget,
                # and what it cannot afford is skipped and reported as dropped.
                nonlocal skipped
                filter_ = sub.filter
                if not filter_.matches_fields(record):
                    return False
                if filter_.regex is None:
                    return True
                matched = ctx.hub.budget.run(sub.key_id, filter_.matches_regex, record)
                if matched is None:
                    skipped += 1
                    return False
                return matched

            replayed = replay(
                self._consumer,
                ctx.codec,
                topic=ctx.settings.kafka.topic,
                start=start,
                stop=live_at,
                accept=accept,
                max_records=ctx.settings.fetch_max_records,
            )
            async with aclosing(replayed) as batches:
                async for batch in batches:
                    if sub.closed is not None:
                        break
                    if skipped:
                        metrics.BUDGET_SKIPPED.inc(skipped)
                        await out.dropped(skipped)
                        skipped = 0
                    if batch:
                        await out.records(batch)
                        self._observe(batch, live=False)
                        metrics.REPLAYED.inc(len(batch))
                        last_id = batch[-1].cursor
                        next_beat = time.monotonic() + heartbeat
                    elif time.monotonic() >= next_beat:
                        await out.heartbeat(None)
                        next_beat = time.monotonic() + heartbeat
            await self._release_replay()
        while True:
            await sub.wait(next_beat)
            if sub.closed is not None:
                metrics.CLOSED.labels(sub.closed.code).inc()
                await out.end(sub.closed)
                return
            batch_ = sub.take()
            if batch_ is None:
                if time.monotonic() >= next_beat:
                    # Idle with an empty queue: everything the hub processed is behind
                    # this client, so the heartbeat can move its resume point forward.
                    checkpoint = ctx.hub.checkpoint(sub)
                    await out.heartbeat(checkpoint if checkpoint != last_id else None)
                    last_id = checkpoint
                    next_beat = time.monotonic() + heartbeat
                continue
            self._lag.observe(batch_.lag)
            if batch_.dropped:
                self._dropped.inc(batch_.dropped)
                await out.dropped(batch_.dropped)
            if batch_.records:
                await out.records(batch_.records)
                self._observe(batch_.records)
                last_id = batch_.records[-1].cursor
            next_beat = time.monotonic() + heartbeat

    def _observe(self, records: Sequence[StreamRecord], *, live: bool = True) -> None:
        self._delivered.inc(len(records))
        if not live:
            return  # replayed events are old by design; latency is about live delivery
        now = time.time()
        observe_many(
            self._latency,
            (max(0.0, now - r.received_at) for r in records if r.received_at is not None),
        )
