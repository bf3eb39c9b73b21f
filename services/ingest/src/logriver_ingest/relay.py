"""The relay: producers outside logriver write ``logs.raw.v1``; the relay admits their
records into ``logs.v1`` through exactly the gateway's door.

One loop turn is a chain of small steps (the consumer kit):

    fetch → admit each record (parse, id, LogEvent rule, time policy, redaction)
          → publish the admitted to logs.v1 and the refused to the DLQ, wait for every ack
          → commit ``{tp: last + 1}``

At-least-once with stable ids: a record without an ``id`` gets one derived from
its raw-topic position, so a redelivery after a crash republishes the same
event and the writer's ``_id`` stores it once. A record that breaks the
admission code itself is isolated and dead-lettered (``handler_error``).

Refused records are the producers' errors, like a 4xx at the gateway, so the
relay has no dead-letter ratio guard: one bad external producer must not stop
the relay for every other one. Broker errors are infrastructure: retried with
backoff, never dead-lettered, and nothing is committed until they succeed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from logriver_common.consumer_kit.backoff import Backoff, retry_until_done
from logriver_common.consumer_kit.commits import CommitTracker
from logriver_common.consumer_kit.dead_letters import DeadLetterQueue, Rejected
from logriver_common.consumer_kit.isolation import handle_each
from logriver_common.consumer_kit.protocol import Consumer, Producer
from logriver_common.consumer_kit.records import Record
from logriver_common.decoding import RejectReason, parse_json
from logriver_common.event import utcnow
from logriver_common.ids import record_event_id
from logriver_common.retention import RetentionPolicy
from logriver_common.telemetry import kafka_attributes, sampled_producer_context
from logriver_ingest import metrics
from logriver_ingest.redaction import Redactor
from logriver_ingest.validation import validate_items

log = logging.getLogger(__name__)
tracer = trace.get_tracer("logriver.relay")

FETCH_TIMEOUT_MS = 500
# Only the W3C trace context crosses the boundary: other headers are the producer's business.
FORWARDED_HEADERS = frozenset({"traceparent", "tracestate"})
_DETAIL_CHARS = 1_000
# Links from one relay batch span to the traced producers in it: enough, and bounded.
MAX_SPAN_LINKS = 32


def producer_links(batches: Iterable[Sequence[Record]]) -> list[Link]:
    """Links to the sampled producer contexts of a batch (messaging conventions for batches)."""
    links: dict[tuple[int, int], Link] = {}
    for records in batches:
        for record in records:
            context = sampled_producer_context(record.headers)
            if context is not None:
                links.setdefault((context.trace_id, context.span_id), Link(context))
                if len(links) >= MAX_SPAN_LINKS:
                    return list(links.values())
    return list(links.values())


@dataclass(frozen=True, slots=True)
class Door:
    """The gateway's admission rule, configured as the gateway is (IngestSettings)."""

    context: dict[str, Any]
    redactor: Redactor
    retention: RetentionPolicy
    max_record_bytes: int


@dataclass(slots=True)
class Admitted:
    record: Record
    key: bytes
    value: bytes


def admit(door: Door, record: Record, now: datetime) -> Admitted | Rejected:
    """One raw record through the door: the event to publish, or why it was refused."""
    value = record.value
    if value is None:
        return Rejected(record, RejectReason.NULL_VALUE, "record has no value (tombstone)")
    if len(value) > door.max_record_bytes:
        detail = f"record is {len(value)} bytes; at most {door.max_record_bytes}"
        return Rejected(record, RejectReason.TOO_LARGE, detail)
    try:
        item = parse_json(value)
    except ValueError as exc:
        return Rejected(record, RejectReason.NOT_JSON, f"value is not JSON (UTF-8): {exc}")
    if not isinstance(item, dict):
        detail = f"value is a JSON {type(item).__name__}, not an object"
        return Rejected(record, RejectReason.NOT_OBJECT, detail)
    if "id" not in item:
        item["id"] = record_event_id(
            record.topic, record.partition, record.offset, record.timestamp
        )
    batch = validate_items(
        [item],
        context=door.context,
        received_at=now,
        redactor=door.redactor,
        retention=door.retention,
    )
    for rule, count in batch.redactions.items():
        metrics.REDACTIONS.labels(rule).inc(count)
    if batch.errors:
        errors = batch.errors[0]["errors"]
        expired = any(error["type"] == "timestamp_expired" for error in errors)
        reason = RejectReason.EXPIRED if expired else RejectReason.INVALID_EVENT
        detail = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'value'}: {error['msg']}"
            for error in errors
        )
        return Rejected(record, reason, detail[:_DETAIL_CHARS])
    ((key, event_value),) = batch.records
    return Admitted(record, key, event_value)


class Relay:
    def __init__(
        self,
        *,
        consumer: Consumer,
        producer: Producer,
        door: Door,
        raw_topic: str,
        topic: str,
        dlq_topic: str,
        fetch_max_records: int = 1_000,
        backoff: Callable[[], Backoff] = lambda: Backoff(0.1, 5.0),
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._door = door
        self.raw_topic = raw_topic
        self.topic = topic
        self.dlq_topic = dlq_topic
        self._fetch_max_records = fetch_max_records
        self._backoff = backoff
        self._dead_letters = DeadLetterQueue(producer, dlq_topic)
        self.commits = CommitTracker()
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        """Finish the turn in flight (publish, commit), then stop."""
        self._stop.set()

    async def run(self) -> None:
        self._consumer.subscribe([self.raw_topic], listener=_CommitOnRevoke(self))
        await self._consumer.start()
        log.info("relay consuming", extra={"from": self.raw_topic, "to": self.topic})
        try:
            while not self._stop.is_set():
                await self.step()
        finally:
            await self._consumer.stop()

    async def step(self) -> None:
        fetched = await self._consumer.getmany(
            timeout_ms=FETCH_TIMEOUT_MS, max_records=self._fetch_max_records
        )
        fetched = {tp: records for tp, records in fetched.items() if records}
        if not fetched:
            return
        await self.relay(fetched)
        await self.commit()

    async def relay(self, fetched: Mapping[TopicPartition, Sequence[Record]]) -> None:
        """Publish what the door admits and dead-letter the rest; return once all are acked."""
        now = utcnow()
        admitted: list[Admitted] = []
        rejected: list[Rejected] = []

        def through_the_door(record: Record) -> None:
            outcome = admit(self._door, record, now)
            if isinstance(outcome, Admitted):
                admitted.append(outcome)
            else:
                rejected.append(outcome)

        count = sum(len(records) for records in fetched.values())
        with tracer.start_as_current_span(
            "logriver.relay process",
            kind=SpanKind.CONSUMER,
            links=producer_links(fetched.values()),
            attributes=kafka_attributes("process", self.raw_topic, count=count),
        ):
            for records in fetched.values():
                rejected += handle_each(records, through_the_door)
            await self._retry(lambda: self._publish(admitted, rejected))
        metrics.RELAYED.inc(len(admitted))
        for item in rejected:
            metrics.RELAY_REJECTED.labels(item.reason.value).inc()
        self.commits.advance(
            {tp: records[-1].offset + 1 for tp, records in fetched.items() if records}
        )

    async def _publish(self, admitted: list[Admitted], rejected: list[Rejected]) -> None:
        acks = []
        for item in admitted:
            headers = [(k, v) for k, v in item.record.headers or () if k in FORWARDED_HEADERS]
            acks.append(
                await self._producer.send(
                    self.topic, value=item.value, key=item.key, headers=headers
                )
            )
        # Every ack, or an error for the whole turn: a retry republishes all of it, and the
        # ids (the client's, or derived from the raw position) make that harmless.
        await asyncio.gather(*acks)
        await self._dead_letters.send(rejected)

    async def _retry(self, operation: Callable[[], Awaitable[None]]) -> None:
        def count(exc: BaseException, delay: float) -> None:
            metrics.RELAY_RETRIES.inc()
            log.warning(
                "relay publish failed; retrying",
                extra={"error": str(exc)[:500], "retry_in_s": delay},
            )

        await retry_until_done(
            operation, transient=KafkaError, backoff=self._backoff(), on_retry=count
        )

    async def commit(self) -> None:
        offsets = self.commits.to_commit(self._consumer.assignment())
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # Kept pending; the next commit carries it. A crash before then only redelivers.
            log.warning("relay commit failed", extra={"error": str(exc)[:500]})
        else:
            self.commits.committed_now(offsets)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.commit()
        self.commits.forget(revoked)


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's rebalance listener protocol: commit what is done while we still own it."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._relay.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("relay partitions assigned", extra={"partitions": sorted(map(str, assigned))})
