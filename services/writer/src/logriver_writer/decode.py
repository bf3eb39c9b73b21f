"""Step 1: decode one Kafka record into the document to store, or a rejection.

Decoding is the canonical decoder of libs/common (the gateway's own rule, and it
never raises); this step adds what storage needs: a stable ``_id`` and the
retention deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry.trace import SpanContext

from logriver_common.consumer_kit.dead_letters import Rejected
from logriver_common.consumer_kit.records import Record
from logriver_common.decoding import Rejection, RejectReason, decode_event
from logriver_common.documents import event_to_document
from logriver_common.event import EventLimits
from logriver_common.ids import record_event_id
from logriver_common.retention import RetentionPolicy
from logriver_common.telemetry import HeaderContexts


# Not frozen: a frozen dataclass's __init__ costs twice as much, and this runs per event.
@dataclass(slots=True)
class Accepted:
    record: Record
    document: dict[str, Any]
    received_at: datetime | None
    producer_span: SpanContext | None


Decoded = Accepted | Rejected
__all__ = ["Accepted", "Decoded", "Decoder", "RejectReason", "Rejected"]


class Decoder:
    def __init__(
        self, *, limits: EventLimits, max_record_bytes: int, retention: RetentionPolicy
    ) -> None:
        self._limits = limits
        self._max_record_bytes = max_record_bytes
        self._retention = retention
        self._contexts = HeaderContexts()

    def decode(self, record: Record, now: datetime | None = None) -> Decoded:
        """``now``: one clock reading for a whole fetched batch (see decode_event)."""
        event = decode_event(
            record.value, limits=self._limits, max_record_bytes=self._max_record_bytes, now=now
        )
        if isinstance(event, Rejection):
            return Rejected(record, event.reason, event.detail)
        if event.id is None:
            # Without an id (a record logriver did not write), a redelivery must get the
            # same _id again.
            event.id = record_event_id(
                record.topic, record.partition, record.offset, record.timestamp
            )
        expire_at = self._retention.expire_at(event.service, event.level_enum, event.when)
        return Accepted(
            record=record,
            document=event_to_document(event, expire_at),
            received_at=event.received,
            producer_span=self._contexts.of(record.headers),
        )
