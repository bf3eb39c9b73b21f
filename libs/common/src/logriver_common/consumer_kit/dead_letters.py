"""Dead letters: records that cannot be stored go to the DLQ topic with the reason why.

The DLQ record keeps the original key, value and headers (so the producer's
trace context survives) and adds headers naming the reason and where the
record came from, so it can be found, fixed and replayed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from logriver_common.consumer_kit.protocol import Producer
from logriver_common.consumer_kit.records import Record
from logriver_common.decoding import RejectReason

# A DLQ record has to fit the broker's default message size; keep the head of bigger values.
MAX_DLQ_VALUE_BYTES = 512 * 1024
REASON_HEADER = "x-dlq-reason"
DETAIL_HEADER = "x-dlq-detail"
SOURCE_TOPIC_HEADER = "x-source-topic"
SOURCE_PARTITION_HEADER = "x-source-partition"
SOURCE_OFFSET_HEADER = "x-source-offset"
TRUNCATED_HEADER = "x-dlq-truncated-from"


@dataclass(slots=True)
class Rejected:
    """A record that will not be processed, and why (a DLQ record once sent)."""

    record: Record
    reason: RejectReason
    detail: str


_OURS = frozenset(
    {
        REASON_HEADER,
        DETAIL_HEADER,
        SOURCE_TOPIC_HEADER,
        SOURCE_PARTITION_HEADER,
        SOURCE_OFFSET_HEADER,
        TRUNCATED_HEADER,
    }
)


def dlq_headers(rejected: Rejected) -> list[tuple[str, bytes]]:
    record = rejected.record
    original = [(k, v) for k, v in (record.headers or ()) if k not in _OURS]
    ours = [
        (REASON_HEADER, rejected.reason.value.encode()),
        (DETAIL_HEADER, rejected.detail.encode("utf-8", "replace")),
        (SOURCE_TOPIC_HEADER, record.topic.encode()),
        (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
        (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
    ]
    value = record.value
    if value is not None and len(value) > MAX_DLQ_VALUE_BYTES:
        ours.append((TRUNCATED_HEADER, str(len(value)).encode()))
    return original + ours


def dlq_value(rejected: Rejected) -> bytes | None:
    """The original value, cut to what the broker takes (``x-dlq-truncated-from`` says so)."""
    value = rejected.record.value
    if value is not None and len(value) > MAX_DLQ_VALUE_BYTES:
        return value[:MAX_DLQ_VALUE_BYTES]
    return value


class DeadLetterQueue:
    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self.topic = topic

    async def send(self, rejected: Sequence[Rejected]) -> None:
        """Produce every record and wait until the broker acked all of them (acks=all)."""
        if not rejected:
            return
        acks = []
        for item in rejected:
            acks.append(
                await self._producer.send(
                    self.topic,
                    value=dlq_value(item),
                    key=item.record.key,
                    headers=dlq_headers(item),
                )
            )
        await asyncio.gather(*acks)


class DlqRatioGuard:
    """Trips when more than ``limit`` of the last ``window`` records were dead-lettered."""

    def __init__(self, *, limit: float, window: int, min_records: int) -> None:
        self.limit = limit
        self.min_records = min(min_records, window)
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._rejected = 0

    def observe(self, accepted: int, rejected: int) -> None:
        # Stored first, then rejected: within one batch the order does not change the ratio
        # once the window is at least a batch long, and it keeps this O(records) and simple.
        for outcome in (False,) * accepted + (True,) * rejected:
            if len(self._outcomes) == self._outcomes.maxlen and self._outcomes[0]:
                self._rejected -= 1
            self._outcomes.append(outcome)
            self._rejected += outcome

    @property
    def ratio(self) -> float:
        return self._rejected / len(self._outcomes) if self._outcomes else 0.0

    def tripped(self) -> str | None:
        """A reason to stop, or None."""
        seen = len(self._outcomes)
        if seen < self.min_records or self.ratio <= self.limit:
            return None
        return (
            f"{self._rejected} of the last {seen} records were invalid "
            f"(ratio {self.ratio:.2f} > limit {self.limit:.2f}); stopped consuming so a bad "
            "producer cannot empty the topic into the DLQ"
        )
