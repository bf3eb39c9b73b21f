"""Hand records to the Kafka producer and wait for every ack, within a deadline.

A request is answered 2xx only when this returns; it raises :class:`Unavailable`
(answered 503 + Retry-After) when the broker cannot take or ack the records in
time, or when too many events are already waiting for acks (bounded memory).
Records already handed over may still be delivered after a 503: that is
at-least-once, and a client that retries with the same event ids is stored once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from logriver_common.telemetry import inject_kafka_headers, kafka_attributes
from logriver_ingest import metrics

log = logging.getLogger(__name__)

Record = tuple[bytes, bytes]  # (key, value)
# From this many records on, a request builds its own record batches (see _send_batches).
BATCH_API_MIN_RECORDS = 64
_PARTITIONER = DefaultPartitioner()
_MAX_CACHED_KEYS = 10_000
Headers = Sequence[tuple[str, bytes]]
_TRACE_HEADERS = ("traceparent", "tracestate")
tracer = trace.get_tracer("logriver.ingest")


class Unavailable(Exception):
    """Kafka cannot take or ack the events now: answered 503 with Retry-After."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail


def _retrieve_exception(future: asyncio.Future[object]) -> None:
    # A record we stopped waiting for may fail later; read the error so asyncio
    # does not log "exception was never retrieved" for it.
    if not future.cancelled():
        future.exception()


def _text(key: bytes) -> str:
    return key.decode("utf-8", "replace")


def _with_current_context(headers: Headers) -> list[tuple[str, bytes]]:
    """The caller's headers, with the trace context of the current (produce) span."""
    kept = [(key, value) for key, value in headers if key not in _TRACE_HEADERS]
    return kept + inject_kafka_headers()


class Publisher:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        *,
        deadline_s: float,
        max_in_flight_events: int,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._deadline_s = deadline_s
        self._max_in_flight = max_in_flight_events
        self._in_flight = 0
        self._partitions: list[int] = []
        self._partition_by_key: dict[bytes, int] = {}
        self._partition_locks: dict[int, asyncio.Lock] = {}

    async def publish(self, records: Sequence[Record], headers: Headers) -> None:
        count = len(records)
        if self._in_flight + count > self._max_in_flight:
            raise Unavailable(
                "overloaded",
                f"{self._in_flight} events are already waiting for Kafka; retry shortly",
            )
        self._in_flight += count
        metrics.EVENTS_IN_FLIGHT.inc(count)
        started = time.perf_counter()
        try:
            # One PRODUCER span per request batch, child of the request's span; the records
            # carry its context, so every consumer's span hangs under this one.
            with tracer.start_as_current_span(
                f"send {self._topic}",
                kind=SpanKind.PRODUCER,
                attributes=kafka_attributes("send", self._topic, count=count),
            ) as span:
                if span.is_recording():
                    keys = {key for key, _ in records}
                    if len(keys) == 1:
                        span.set_attribute("messaging.kafka.message.key", _text(keys.pop()))
                await self._send_all(records, _with_current_context(headers))
        finally:
            self._in_flight -= count
            metrics.EVENTS_IN_FLIGHT.dec(count)
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)

    async def _send_all(self, records: Sequence[Record], headers: list[tuple[str, bytes]]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._deadline_s
        futures: list[asyncio.Future[object]] = []
        try:
            # Handing over waits for topic metadata and for room in the producer's
            # buffer; cancelling it (the deadline) leaves the pending records unsent.
            async with asyncio.timeout_at(deadline):
                if len(records) >= BATCH_API_MIN_RECORDS:
                    await self._send_batches(records, headers, futures)
                else:
                    await self._send_records(records, headers, futures)
            done, pending = await asyncio.wait(futures, timeout=max(0.0, deadline - loop.time()))
        except TimeoutError:
            self._abandon(futures)
            raise Unavailable(
                "timeout", f"Kafka did not accept the events within {self._deadline_s}s"
            ) from None
        except KafkaError as exc:
            self._abandon(futures)
            raise Unavailable("kafka_error", f"Kafka refused the events: {exc!r}") from None
        if pending:
            self._abandon(pending)
            raise Unavailable("timeout", f"Kafka did not ack the events within {self._deadline_s}s")
        for future in done:
            error = future.exception()
            if error is not None:
                self._abandon(futures)
                log.warning("kafka send failed", exc_info=error)
                raise Unavailable("kafka_error", f"Kafka did not ack the events: {error!r}")

    async def _send_records(
        self,
        records: Sequence[Record],
        headers: list[tuple[str, bytes]],
        futures: list[asyncio.Future[object]],
    ) -> None:
        """Small requests: the producer's accumulator merges them with other requests'."""
        send = self._producer.send
        topic = self._topic
        for key, value in records:
            futures.append(await send(topic, value, key=key, headers=headers))

    async def _send_batches(
        self,
        records: Sequence[Record],
        headers: list[tuple[str, bytes]],
        futures: list[asyncio.Future[object]],
    ) -> None:
        """Large requests: one record batch per partition, built here.

        The same partitioner as send() (murmur2 of the key, as the Java client),
        so a service's events land on the same partition either way. It costs a
        fraction of send() per record, which matters at tens of thousands per second.
        """
        partition_of = await self._partition_map()
        batches: dict[int, BatchBuilder] = {}
        for key, value in records:
            partition = partition_of(key)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = self._producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value, headers=headers) is not None:
                continue
            # The batch is full: send it and start the next one for this partition.
            futures.append(await self._submit(batch, partition))
            batch = batches[partition] = self._producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                # Larger than a whole batch: send() raises the producer's size error.
                futures.append(await self._producer.send(self._topic, value, key=key))
                del batches[partition]
        for partition, batch in batches.items():
            futures.append(await self._submit(batch, partition))

    async def _submit(self, batch: BatchBuilder, partition: int) -> asyncio.Future[object]:
        batch.close()
        # The producer queues one hand-built batch per partition and makes the next
        # caller wait until it is drained; with many callers waiting at once its
        # timeout accounting fails them early (aiokafka 0.14 add_batch). One waiter
        # per partition at a time avoids that; the others wait on this lock.
        lock = self._partition_locks.get(partition)
        if lock is None:
            lock = self._partition_locks[partition] = asyncio.Lock()
        async with lock:
            future: asyncio.Future[object] = await self._producer.send_batch(
                batch, self._topic, partition=partition
            )
        return future

    async def _partition_map(self) -> Callable[[bytes], int]:
        partitions = sorted(await self._producer.partitions_for(self._topic))
        if partitions != self._partitions:
            # New or first metadata (partitions were added): recompute every key.
            self._partitions = partitions
            self._partition_by_key.clear()
        cache = self._partition_by_key

        def partition_of(key: bytes) -> int:
            partition = cache.get(key)
            if partition is None:
                if len(cache) >= _MAX_CACHED_KEYS:
                    cache.clear()
                partition = cache[key] = int(_PARTITIONER(key, partitions, partitions))
            return partition

        return partition_of

    @staticmethod
    def _abandon(futures: Sequence[asyncio.Future[object]] | set[asyncio.Future[object]]) -> None:
        for future in futures:
            if future.done():
                _retrieve_exception(future)
            else:
                future.add_done_callback(_retrieve_exception)
