"""The alerter's Kafka consumer, as small steps: decode → count → commit.

Counting an event into a window is the work, so offsets are committed after
records are counted (and on revocation). A crash after counting but before
the commit loses nothing: the rebuild restores the counts from MongoDB.

Records are decoded by the canonical decoder (it never raises). One it refuses
is skipped and counted: the writer, which applies the same decoder, already
dead-letters it, so the DLQ holds one copy with the reason. A record that makes
the counting itself fail is isolated (the consumer kit) and dead-lettered here
with ``handler_error``; the consumer goes on with the next record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from opentelemetry import trace
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from logriver_alerter import metrics
from logriver_alerter.evaluator import Evaluator
from logriver_alerter.rebuild import partition_for, rebuild
from logriver_alerter.repositories import Repositories, StorageUnavailable
from logriver_common.consumer_kit.backoff import Backoff, retry_until_done
from logriver_common.consumer_kit.dead_letters import DeadLetterQueue, Rejected
from logriver_common.consumer_kit.isolation import handle_each
from logriver_common.decoding import Rejection, decode_event
from logriver_common.event_rule import Event
from logriver_common.telemetry import ProducerContexts, kafka_attributes

log = logging.getLogger(__name__)
REBUILD_ATTEMPTS = 5
tracer = trace.get_tracer("logriver.alerter")
# Spans per consumer batch and partition, at most (one per sampled producer context).
MAX_COUNT_SPANS = 64


def decode(record: ConsumerRecord[Any, Any], now: datetime) -> Event | None:
    """The record's event; refused ones are the writer's to dead-letter, here just skipped.

    ``now`` (for the future-skew check) is read once per fetched batch."""
    event = decode_event(record.value, now=now)
    if isinstance(event, Rejection):
        metrics.EVENTS.labels("invalid").inc()
        return None
    return event


class AlertConsumer(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        evaluator: Evaluator,
        store: Repositories,
        logs: AsyncCollection[dict[str, Any]],
        *,
        topic: str,
        group_id: str,
        commit_interval_s: float,
        dlq: DeadLetterQueue | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.consumer = consumer
        self.evaluator = evaluator
        self.store = store
        self.logs = logs
        self.topic = topic
        self.group_id = group_id
        self.commit_interval_s = commit_interval_s
        self.dlq = dlq
        self.clock = clock
        self.pending: dict[int, int] = {}  # partition -> next offset, not yet committed
        self.received: dict[int, datetime] = {}  # partition -> newest received_at counted
        self.skip_ids: dict[int, set[str]] = {}
        self.assigned_once = asyncio.Event()
        self._last_commit = time.monotonic()

    # -- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        self.consumer.subscribe([self.topic], listener=self)
        while True:
            batch = await self.consumer.getmany(timeout_ms=250, max_records=5000)
            now = self.clock()
            failed: list[Rejected] = []
            for tp, records in batch.items():
                failed += self.count(tp.partition, records, now)
                self.track_lag(tp, now)
            if failed:
                await self.dead_letter(failed)
            if time.monotonic() - self._last_commit >= self.commit_interval_s:
                await self.commit()

    def count(
        self, partition: int, records: list[ConsumerRecord[Any, Any]], now: datetime
    ) -> list[Rejected]:
        """Count each record into its window; return the records counting failed on."""
        skip = self.skip_ids.get(partition)
        newest = self.received.get(partition)
        contexts = ProducerContexts(MAX_COUNT_SPANS)
        traced: dict[tuple[int, int], tuple[trace.SpanContext, ConsumerRecord[Any, Any]]] = {}
        started = time.time_ns()
        counted = late = 0

        def count_one(record: ConsumerRecord[Any, Any]) -> None:
            nonlocal newest, counted, late
            event = decode(record, now)
            if event is None:
                return
            if skip and event.id in skip:
                skip.discard(event.id)
                metrics.EVENTS.labels("duplicate").inc()
            else:
                if self.evaluator.ingest(partition, event, now):
                    counted += 1
                else:
                    late += 1
                producer = contexts.of(record.headers)
                if producer is not None:
                    traced.setdefault((producer.trace_id, producer.span_id), (producer, record))
            seen = event.received or event.when
            if newest is None or seen > newest:
                newest = seen

        failed = handle_each(records, count_one)
        metrics.EVENTS.labels("counted").inc(counted)
        metrics.EVENTS.labels("late").inc(late)
        if traced:
            self.count_spans(partition, traced, contexts.records, started)
        if failed:
            metrics.EVENTS.labels("failed").inc(len(failed))
        if records:
            self.pending[partition] = records[-1].offset + 1
        if newest is not None:
            self.received[partition] = newest
            metrics.EVALUATION_LAG.set(max(0.0, (now - newest).total_seconds()))
        return failed

    def count_spans(
        self,
        partition: int,
        traced: dict[tuple[int, int], tuple[trace.SpanContext, ConsumerRecord[Any, Any]]],
        counts: dict[tuple[int, int], int],
        started: int,
    ) -> None:
        """A short ``logriver.alerter count`` span per sampled producer context counted.

        A child of the producer's span (one per gateway request batch, not per event: a span
        per event would cost more than counting it). The evaluation that may fire later is
        a ``logriver.alerter.notify`` span in the sample event's trace.
        """
        for key, (producer, first) in traced.items():
            attributes = kafka_attributes(
                "process",
                self.topic,
                partition=partition,
                offset=first.offset,
                key=first.key,
                group=self.group_id,
                count=counts.get(key, 1),
            )
            span = tracer.start_span(
                "logriver.alerter count",
                context=trace.set_span_in_context(trace.NonRecordingSpan(producer)),
                kind=trace.SpanKind.CONSUMER,
                attributes=attributes,
                start_time=started,
            )
            span.end()

    async def dead_letter(self, failed: list[Rejected]) -> None:
        """Send isolated records to the DLQ before their offsets can be committed."""
        if self.dlq is None:
            return
        dlq = self.dlq

        def warn(exc: BaseException, delay: float) -> None:
            log.warning("DLQ send failed; retrying", extra={"error": str(exc)[:300]})

        await retry_until_done(
            lambda: dlq.send(failed), transient=KafkaError, backoff=Backoff(0.1, 5.0), on_retry=warn
        )

    def track_lag(self, tp: TopicPartition, now: datetime) -> None:
        """A partition with a backlog may only be evaluated up to the event time it reached."""
        highwater = self.consumer.highwater(tp)
        position = self.pending.get(tp.partition)
        reached = self.received.get(tp.partition)
        if highwater is not None and position is not None and position < highwater and reached:
            self.evaluator.lagging[tp.partition] = reached
        else:
            self.evaluator.lagging.pop(tp.partition, None)

    async def commit(self, partitions: set[int] | None = None) -> None:
        offsets = {p: o for p, o in self.pending.items() if partitions is None or p in partitions}
        self._last_commit = time.monotonic()
        if not offsets:
            return
        try:
            await self.consumer.commit(
                {TopicPartition(self.topic, p): o for p, o in offsets.items()}
            )
        except KafkaError as exc:
            log.warning("offset commit failed", extra={"error": str(exc)})
            return
        for p, o in offsets.items():
            if self.pending.get(p) == o:
                del self.pending[p]
        progress = {p: (o, self.received.get(p, self.clock())) for p, o in offsets.items()}
        try:
            await self.store.progress.save(self.group_id, self.topic, progress)
        except StorageUnavailable as exc:
            # An older progress row only widens the rebuild's overlap: still correct.
            log.warning("could not save progress", extra={"error": str(exc)})

    # -- rebalancing --------------------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        partitions = {tp.partition for tp in revoked if tp.topic == self.topic}
        await self.commit(partitions)
        for p in partitions:
            self.pending.pop(p, None)
            self.received.pop(p, None)
            self.skip_ids.pop(p, None)
        self.evaluator.revoke(partitions)
        log.info("partitions revoked", extra={"partitions": sorted(partitions)})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        partitions = {tp.partition for tp in assigned if tp.topic == self.topic}
        started = time.perf_counter()
        await self.install(partitions)
        metrics.REBUILD_SECONDS.observe(time.perf_counter() - started)
        self.assigned_once.set()
        log.info(
            "partitions assigned",
            extra={
                "partitions": sorted(partitions),
                "seconds": round(time.perf_counter() - started, 3),
            },
        )

    async def install(self, partitions: set[int]) -> None:
        count = len(self.consumer.partitions_for_topic(self.topic) or ()) or 1
        backoff = Backoff(2.0, 10.0)
        for attempt in range(1, REBUILD_ATTEMPTS + 1):
            try:
                await self.evaluator.refresh()
                progress = await self.store.progress.load(self.group_id, self.topic)
                since = self.clock() - timedelta(seconds=self.evaluator.retention_s)
                rebuilt = await rebuild(
                    self.logs,
                    partitions=partitions,
                    partition_count=count,
                    since=since,
                    committed_at={p: at for p, (_, at) in progress.items()},
                )
                alerts = await self.store.incidents.active()
                break
            except (PyMongoError, StorageUnavailable) as exc:
                log.warning("rebuild failed", extra={"attempt": attempt, "error": str(exc)})
                if attempt == REBUILD_ATTEMPTS:
                    raise
                await asyncio.sleep(backoff.next_delay())
        for p in partitions:
            mine = [a for a in alerts if partition_for(a.service, count) == p]
            self.evaluator.install(p, rebuilt.windows.get(p, {}), mine)
            self.skip_ids[p] = rebuilt.skip_ids.get(p, set())
        log.info("state rebuilt", extra={"events": rebuilt.events, "alerts": len(alerts)})
