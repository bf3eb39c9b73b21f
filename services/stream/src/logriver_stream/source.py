"""The live source: one Kafka consumer per instance, every partition, no group.

Without a consumer group each instance reads the whole topic on its own, which
is what live tail needs (every instance can serve any filter) and keeps
instances independent: no rebalances when one starts or stops, and nothing to
commit, because the stream's position lives in each client's cursor, not in
Kafka. The consumer starts at the end of every partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from opentelemetry import trace

from logriver_common import clients
from logriver_common.consumer_kit.backoff import Backoff
from logriver_common.telemetry import ProducerContexts, kafka_attributes
from logriver_common.web.health import Readiness
from logriver_stream import metrics
from logriver_stream.hub import Hub, SourceItem
from logriver_stream.records import BadRecord, StreamRecord, parse_record
from logriver_stream.settings import StreamSettings

log = logging.getLogger(__name__)
_TOPIC_WAIT_S = 10.0
tracer = trace.get_tracer("logriver.stream")
# Delivery spans per fetch, at most (one per sampled producer context).
MAX_DELIVERY_SPANS = 64


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``; fails clearly when the topic does not exist."""
    # A consumer without subscriptions tracks no topic metadata, so ask the
    # cluster directly; a topic created a moment ago may take a few polls to appear.
    deadline = asyncio.get_running_loop().time() + _TOPIC_WAIT_S
    while True:
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(topic)
        if partitions:
            return [TopicPartition(topic, p) for p in sorted(partitions)]
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"Kafka topic {topic!r} does not exist (or has no partitions)")
        await asyncio.sleep(0.2)


def consumer_for(settings: StreamSettings, *, live: bool = False) -> AIOKafkaConsumer:
    """A consumer for the live source (``live``: batched fetches) or for one replay."""
    return clients.kafka_consumer(
        settings.kafka,
        group_id=None,
        # A replay reads what is already there: the broker answers as soon as it has
        # anything. The live source waits for fuller fetches (see StreamSettings).
        fetch_min_bytes=settings.fetch_min_bytes if live else 1,
        fetch_max_wait_ms=settings.fetch_max_wait_ms if live else 100,
        max_partition_fetch_bytes=1024 * 1024,
    )


class KafkaSource:
    def __init__(self, settings: StreamSettings, hub: Hub, readiness: Readiness) -> None:
        self._settings = settings
        self._hub = hub
        self._readiness = readiness
        self._consumer = consumer_for(settings, live=True)
        self.partitions: list[TopicPartition] = []
        self._bad_logged = 0

    @property
    def consumer(self) -> AIOKafkaConsumer:
        return self._consumer

    async def start(self) -> None:
        """Join the topic at its end; the read loop (:meth:`run`) is the caller's task."""
        await self._consumer.start()
        try:
            self.partitions = await topic_partitions(self._consumer, self._settings.kafka.topic)
            self._consumer.assign(self.partitions)
            await self._consumer.seek_to_end(*self.partitions)
            for tp in self.partitions:
                self._hub.position[tp.partition] = await self._consumer.position(tp)
        except BaseException:
            await self._consumer.stop()
            raise

    async def stop(self) -> None:
        await self._consumer.stop()

    async def check(self) -> None:
        """Readiness: the broker answers (a dead read loop fails readiness by itself)."""
        await clients.check_kafka_consumer(self._consumer)

    async def run(self) -> None:
        failures = 0
        # The consumer kit's one retry policy: 0.5 s doubling to 5 s, jittered.
        backoff = Backoff(0.5, 5.0)
        while True:
            try:
                batches = await self._consumer.getmany(
                    timeout_ms=1_000, max_records=self._settings.fetch_max_records
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broker hiccup must not end live tail
                delay = backoff.next_delay()
                failures += 1
                log.warning("live source fetch failed; retrying in %ss: %r", delay, exc)
                self._readiness.fail("source", f"fetch failed: {type(exc).__name__}")
                await asyncio.sleep(delay)
                continue
            if failures:
                failures = 0
                backoff.reset()
                self._readiness.clear("source")
            if batches:
                items = self._decode(batches)
                started = time.time_ns()
                try:
                    traced = self._hub.publish(items)
                    if traced:
                        self._delivery_spans(traced, started)
                except Exception:  # the last guard: one batch must not end live tail
                    metrics.BAD_RECORDS.labels("publish_error").inc(len(items))
                    log.exception("live source could not fan out a batch; skipping it")

    def _decode(self, batches: dict[TopicPartition, list[Any]]) -> list[SourceItem]:
        items: list[SourceItem] = []
        wanted = self._hub.wants_key
        contexts = ProducerContexts(MAX_DELIVERY_SPANS)
        consumed = 0
        for tp, records in batches.items():
            consumed += len(records)
            # Keys repeat (one per service) and no subscriber changes during this call.
            verdicts: dict[bytes | None, bool] = {}
            skipped: int | None = None
            for message in records:
                offset: int = message.offset
                record: StreamRecord | None
                key = message.key
                want = verdicts.get(key)
                if want is None:
                    want = verdicts[key] = wanted(key)
                if not want:
                    # Nobody follows this record's service: skipped undecoded (Hub.wants_key).
                    # A run of such records advances the position once, by its last offset.
                    skipped = offset
                    continue
                if skipped is not None:
                    items.append((tp.partition, skipped, None))
                    skipped = None
                try:
                    parsed = parse_record(tp.partition, offset, message.value)
                except BadRecord as exc:
                    metrics.BAD_RECORDS.labels(exc.reason).inc()
                    if self._bad_logged < 20:  # enough to diagnose, not a log flood
                        self._bad_logged += 1
                        log.warning("skipping record %s@%s: %s", tp.partition, offset, exc)
                    record = None
                else:
                    # Only records of a sampled trace, one span per producer context: a span
                    # per delivered event would cost more than the delivery.
                    parsed.producer = contexts.of(message.headers)
                    if parsed.producer is not None:
                        parsed.key = message.key
                    record = parsed
                items.append((tp.partition, offset, record))
            if skipped is not None:
                items.append((tp.partition, skipped, None))
        metrics.CONSUMED.inc(consumed)
        return items

    def _delivery_spans(self, traced: dict[StreamRecord, int], started: int) -> None:
        """A ``logriver.stream deliver`` span per sampled producer context delivered.

        A child of the producer's span, covering the fan-out that handed its records to
        the subscribers' queues; one per context (a gateway request batch), not per record.
        """
        topic = self._settings.kafka.topic
        groups: dict[tuple[int, int], tuple[StreamRecord, int, int]] = {}
        for record, subscribers in traced.items():
            if record.producer is None:
                continue
            key = (record.producer.trace_id, record.producer.span_id)
            first, count, deliveries = groups.get(key, (record, 0, 0))
            groups[key] = (first, count + 1, deliveries + subscribers)
        for first, count, deliveries in groups.values():
            if first.producer is None:
                continue
            attributes = kafka_attributes(
                "process",
                topic,
                partition=first.partition,
                offset=first.offset,
                key=first.key,
                count=count,
            )
            attributes["logriver.deliveries"] = deliveries
            span = tracer.start_span(
                "logriver.stream deliver",
                context=trace.set_span_in_context(trace.NonRecordingSpan(first.producer)),
                kind=trace.SpanKind.CONSUMER,
                attributes=attributes,
                start_time=started,
            )
            span.end()
