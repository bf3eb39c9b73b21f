"""The consumer loop: fetch → decode → batch → store + dead-letter → commit.

One batch is written at a time while the next one is fetched and decoded, so
decoding overlaps MongoDB's work. Offsets are committed (``{tp: last + 1}``)
only after the batch is stored with w=majority and its rejects are acked by
the DLQ topic, in batch order, so a crash at any point redelivers only events
that MongoDB's ``_id`` then absorbs.

Backpressure: when the next batch is full while a write is in flight, or while
MongoDB is failing, the partitions are paused. The loop then only waits (no
busy loop), memory stays at two batches, and a zero-timeout ``getmany`` every
second keeps the group from evicting a consumer that is merely waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind
from pymongo.asynchronous.collection import AsyncCollection

from logriver_common.consumer_kit.backoff import Backoff
from logriver_common.consumer_kit.dead_letters import DeadLetterQueue, DlqRatioGuard
from logriver_common.consumer_kit.records import Record
from logriver_common.histograms import observe_many
from logriver_writer import metrics
from logriver_writer.batcher import Batch, Batcher
from logriver_writer.decode import Accepted, Decoder, Rejected, RejectReason
from logriver_writer.rollups import RollupSettings, TransactionalInsert
from logriver_writer.settings import WriterSettings
from logriver_writer.sink import Document, TransientWriteError, majority_collection

log = logging.getLogger(__name__)
tracer = trace.get_tracer("logriver.writer")

T = TypeVar("T")
FETCH_TIMEOUT_MS = 1_000
# Records decoded per loop turn. Decoding is CPU work on the event loop; small turns let a
# finished write be noticed (and the next one started) promptly, keeping MongoDB busy.
FETCH_CHUNK = 500
KEEPALIVE_S = 1.0
MAX_SPAN_LINKS = 128  # the SDK's default link limit
# Child spans per batch in the producers' traces: enough for traced requests, bounded for
# batches where every event came from a different traced request.
MAX_STORE_SPANS = 64
Fetched = Mapping[TopicPartition, Sequence[Record]]


class WriterConsumer:
    def __init__(
        self,
        *,
        settings: WriterSettings,
        consumer: AIOKafkaConsumer,
        dlq: DeadLetterQueue,
        collection: AsyncCollection[Document],
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._dlq = dlq
        self._collection = majority_collection(collection)
        self._rollup_retention = timedelta(days=RollupSettings().retention_days)
        self._decoder = Decoder(
            limits=settings.event_limits(),
            max_record_bytes=settings.max_record_bytes,
            retention=settings.retention,
        )
        self._batcher = Batcher(
            max_events=settings.batch_max_events, max_wait_s=settings.batch_max_wait_ms / 1000
        )
        self._guard = DlqRatioGuard(
            limit=settings.dlq_ratio_limit,
            window=settings.dlq_ratio_window,
            min_records=settings.dlq_ratio_min_records,
        )
        self._stop_requested = asyncio.Event()
        self._inflight: asyncio.Task[None] | None = None
        self._fetch: asyncio.Task[Fetched] | None = None
        self._retrying = False
        self._uncommitted: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.stop_reason: str | None = None

    @property
    def buffered(self) -> int:
        """Records fetched but not yet handed to a write (bounded by the batch size)."""
        return len(self._batcher)

    @property
    def paused(self) -> bool:
        return bool(self._consumer.paused())

    def request_stop(self) -> None:
        """Stop fetching; the batch in flight and the records already fetched are written."""
        self._stop_requested.set()

    async def run(self) -> str | None:
        """Consume until stopped; returns why it stopped on its own (the DLQ ratio limit)."""
        stop_waiter = asyncio.create_task(self._stop_requested.wait())
        lag_reporter = asyncio.create_task(self._report_lag())
        try:
            self._consumer.subscribe([self._settings.kafka.topic], listener=_Listener(self))
            await self._consumer.start()
            log.info(
                "writer consuming",
                extra={"topic": self._settings.kafka.topic, "group": self._settings.group_id},
            )
            while not self._stop_requested.is_set() and self.stop_reason is None:
                await self._step(stop_waiter)
            await self._drain()
        finally:
            for task in (stop_waiter, lag_reporter, self._fetch, self._inflight):
                await _cancel(task)
            metrics.PAUSED.set(0)
            await self._consumer.stop()
        return self.stop_reason

    # -- the loop ----------------------------------------------------------------------------

    async def _step(self, stop_waiter: asyncio.Task[Any]) -> None:
        self._collect_write()
        if self._inflight is None and self._batcher.ready():
            self._start_write(self._batcher.take())
            return
        inflight = self._inflight
        if inflight is not None and (self._batcher.full() or self._retrying):
            await self._wait_paused(inflight, stop_waiter)
            return
        self._resume()
        if self._fetch is None:
            self._fetch = asyncio.create_task(
                self._consumer.getmany(
                    timeout_ms=FETCH_TIMEOUT_MS, max_records=min(self._batcher.room, FETCH_CHUNK)
                )
            )
        waiters: set[asyncio.Future[Any]] = {self._fetch, stop_waiter}
        if inflight is not None:
            waiters.add(inflight)
        # An aged batch has to wait for the write in flight anyway, so only time out without one.
        timeout = self._batcher.remaining_wait() if inflight is None else None
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        self._collect_fetch()

    async def _wait_paused(
        self, inflight: asyncio.Task[None], stop_waiter: asyncio.Task[Any]
    ) -> None:
        self._pause()
        waiters: set[asyncio.Future[Any]] = {inflight, stop_waiter}
        if self._fetch is not None:
            waiters.add(self._fetch)
        await asyncio.wait(waiters, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED)
        self._collect_fetch()
        if not inflight.done() and self._fetch is None and not self._stop_requested.is_set():
            # Paused partitions return nothing; the call only tells the group we are alive.
            self._pause()
            self._absorb(await self._consumer.getmany(timeout_ms=0))

    def _collect_fetch(self) -> None:
        if self._fetch is not None and self._fetch.done():
            fetched, self._fetch = self._fetch, None
            self._absorb(fetched.result())

    def _absorb(self, fetched: Fetched) -> None:
        assignment = self._consumer.assignment()
        for tp, records in fetched.items():
            if tp not in assignment:
                continue  # revoked while the fetch was under way: the new owner reads them
            if records:
                decode = self._decoder.decode
                now = datetime.now(UTC)
                decoded = [decode(record, now) for record in records]
                self._batcher.extend(tp, decoded, records[-1].offset + 1)

    def _collect_write(self) -> None:
        if self._inflight is not None and self._inflight.done():
            finished, self._inflight = self._inflight, None
            finished.result()  # a bug in the write path stops the consumer, loudly

    def _start_write(self, batch: Batch) -> None:
        self._guard.observe(len(batch.accepted), len(batch.rejected))
        reason = self._guard.tripped()
        if reason is not None:
            # Neither stored nor dead-lettered nor committed: after the producer is fixed, a
            # restarted writer picks this batch up again.
            self.stop_reason = reason
            log.error("writer stopped: DLQ ratio limit exceeded", extra={"reason": reason})
            return
        self._inflight = asyncio.create_task(self._process(batch))

    async def _drain(self) -> None:
        """SIGTERM: no more fetching; write and commit what is in flight and already fetched."""
        await _cancel(self._fetch)
        self._fetch = None
        if self._inflight is not None:
            await asyncio.wait({self._inflight})
            self._collect_write()
        if self.stop_reason is None and len(self._batcher):
            self._start_write(self._batcher.take())
            if self._inflight is not None:
                await asyncio.wait({self._inflight})
                self._collect_write()
        committed = dict(zip(_names(self.committed), self.committed.values(), strict=True))
        log.info("writer drained", extra={"committed": committed})

    def _pause(self) -> None:
        assignment = self._consumer.assignment()
        if assignment:
            self._consumer.pause(*assignment)
        metrics.PAUSED.set(1)

    def _resume(self) -> None:
        paused = self._consumer.paused()
        if paused:
            self._consumer.resume(*paused)
        metrics.PAUSED.set(0)

    # -- one batch ---------------------------------------------------------------------------

    async def _process(self, batch: Batch) -> None:
        links = _producer_links(batch.accepted)
        with tracer.start_as_current_span(
            "writer.batch",
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": self._settings.kafka.topic,
                "messaging.consumer.group.name": self._settings.group_id,
                "messaging.batch.message_count": len(batch),
            },
        ) as span:
            # The batch span lives in its own trace (it serves many producers); these short
            # children put the writer hop into each producer's trace as well.
            store_spans = start_store_spans(tracer, batch.accepted, span.get_span_context())
            try:
                bulk = await self._store(batch.accepted)
            finally:
                for store_span in store_spans:
                    store_span.end()
            rejected = list(batch.rejected)
            rejected += [
                Rejected(batch.accepted[index].record, RejectReason.UNSTORABLE, why)
                for index, why in bulk.unstorable.items()
            ]
            await self._retry("kafka_dlq", lambda: self._dlq.send(rejected), KafkaError)
            for item in rejected:
                metrics.DLQ_RECORDS.labels(item.reason.value).inc()
            await self._commit(batch.next_offsets)
            metrics.BATCH_SIZE.observe(len(batch))
            span.set_attributes(
                {
                    "logriver.inserted": bulk.inserted,
                    "logriver.duplicates": bulk.duplicates,
                    "logriver.dead_lettered": len(rejected),
                }
            )

    async def _store(self, accepted: list[Accepted]) -> TransactionalInsert:
        documents: list[Document] = [item.document for item in accepted]
        # A service's events share a partition (they are keyed by its name), so this
        # writer alone updates the per-level totals it counts them into (see rollups.py).
        shards = {item.document["service"]: item.record.partition for item in accepted}
        # Events and their rollup counts in one transaction (see rollups.py).
        bulk = TransactionalInsert(self._collection, documents, self._rollup_retention, shards)
        with metrics.WRITE_SECONDS.time():
            await self._retry("mongodb", bulk.attempt, TransientWriteError)
        metrics.EVENTS_WRITTEN.inc(bulk.inserted)
        metrics.DUPLICATES_SKIPPED.inc(bulk.duplicates)
        stored_at = datetime.now(UTC)
        observe_many(
            metrics.INGEST_TO_STORED_SECONDS,
            (
                max((stored_at - item.received_at).total_seconds(), 0.0)
                for item in accepted
                if item.received_at is not None
            ),
        )
        return bulk

    async def _retry(
        self,
        target: str,
        operation: Callable[[], Awaitable[T]],
        transient: type[Exception],
    ) -> T:
        """Retry failing infrastructure with bounded backoff until it works (or is cancelled)."""
        settings = self._settings
        backoff = Backoff(settings.retry_initial_backoff_s, settings.retry_max_backoff_s)
        try:
            while True:
                try:
                    return await operation()
                except transient as exc:
                    delay = backoff.next_delay()
                    self._retrying = True  # pauses the partitions until it works
                    metrics.WRITE_RETRIES.labels(target).inc()
                    log.warning(
                        "write failed; retrying",
                        extra={"target": target, "error": str(exc)[:500], "retry_in_s": delay},
                    )
                    await asyncio.sleep(delay)
        finally:
            self._retrying = False

    async def _commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        merged = dict(self._uncommitted)
        for tp, offset in offsets.items():
            merged[tp] = max(merged.get(tp, 0), offset)
        # Offsets of partitions revoked meanwhile are the new owner's to re-read (_id dedups).
        owned = self._consumer.assignment()
        merged = {tp: offset for tp, offset in merged.items() if tp in owned}
        self._uncommitted = {}
        if not merged:
            return
        try:
            await self._consumer.commit(merged)
        except CommitFailedError as exc:
            metrics.COMMIT_FAILURES.inc()
            log.warning("commit rejected after a rebalance", extra={"error": str(exc)})
        except KafkaError as exc:
            # Carried into the next commit; a crash before it only means a redelivery.
            metrics.COMMIT_FAILURES.inc()
            self._uncommitted = merged
            log.warning("commit failed; retrying with the next batch", extra={"error": str(exc)})
        else:
            self.committed.update(merged)

    # -- rebalancing and lag -----------------------------------------------------------------

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            # Finish and commit the batch in flight while these partitions are still ours.
            await asyncio.wait({inflight}, timeout=self._settings.shutdown_timeout_s)
        if self._uncommitted:
            await self._commit({})
        self._batcher.drop_partitions(revoked)
        for tp in revoked:
            self.committed.pop(tp, None)
            _forget_lag(tp)
        if revoked:
            log.info("partitions revoked", extra={"partitions": _names(revoked)})

    async def _report_lag(self) -> None:
        while True:
            await asyncio.sleep(self._settings.lag_interval_s)
            try:
                await self._update_lag()
            except (KafkaError, OSError, TimeoutError) as exc:
                log.debug("could not read consumer lag", extra={"error": str(exc)})

    async def _update_lag(self) -> None:
        assignment = list(self._consumer.assignment())
        if not assignment:
            return
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(assignment)
        for tp, end in ends.items():
            done = self.committed.get(tp)
            if done is None:
                done = await self._consumer.committed(tp)
                if done is None:
                    continue
                self.committed[tp] = done
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(end - done, 0))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, writer: WriterConsumer) -> None:
        self._writer = writer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._writer.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": _names(assigned)})


def _producer_links(accepted: Iterable[Accepted]) -> list[Link]:
    seen: set[tuple[int, int]] = set()
    links: list[Link] = []
    for item in accepted:
        context = item.producer_span
        if context is None or (context.trace_id, context.span_id) in seen:
            continue
        seen.add((context.trace_id, context.span_id))
        links.append(Link(context))
        if len(links) >= MAX_SPAN_LINKS:
            break
    return links


def start_store_spans(
    tracer: trace.Tracer, accepted: Iterable[Accepted], batch: SpanContext
) -> list[trace.Span]:
    """One ``logriver.writer.store`` span per distinct sampled producer context, as its child.

    The caller ends them once the batch is stored. Unsampled contexts get none: the producer
    decided not to record that trace, and a child of it would be dropped anyway.
    """
    contexts: dict[tuple[int, int], SpanContext] = {}
    counts: dict[tuple[int, int], int] = {}
    for item in accepted:
        context = item.producer_span
        if context is None or not context.trace_flags.sampled:
            continue
        key = (context.trace_id, context.span_id)
        if key in counts:
            counts[key] += 1
        elif len(counts) < MAX_STORE_SPANS:
            contexts[key] = context
            counts[key] = 1
    spans = []
    for key, context in contexts.items():
        span = tracer.start_span(
            "logriver.writer.store",
            context=trace.set_span_in_context(NonRecordingSpan(context)),
            kind=SpanKind.CONSUMER,
            links=[Link(batch)],
            # No messaging.destination.name: searching Jaeger by topic finds the batch spans.
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "logriver.events": counts[key],
            },
        )
        spans.append(span)
    return spans


def _names(partitions: Iterable[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in partitions]


def _forget_lag(tp: TopicPartition) -> None:
    with contextlib.suppress(KeyError):  # never reported for this partition
        metrics.CONSUMER_LAG.remove(tp.topic, str(tp.partition))


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a child task and wait for it; our own cancellation still propagates."""
    if task is None or task.done():
        if task is not None and not task.cancelled():
            task.exception()  # mark retrieved; failures were already handled or logged
        return
    task.cancel()
    await asyncio.wait({task})
