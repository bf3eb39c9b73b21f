"""Event ids: random UUIDv7s for new events, deterministic ones for Kafka records.

A record that arrives without an id (a direct producer on the raw topic) gets
one derived from its position, so every redelivery of that record carries the
same id and MongoDB's ``_id`` stores it once.
"""

from __future__ import annotations

import hashlib


def record_event_id(topic: str, partition: int, offset: int, timestamp_ms: int) -> str:
    """A deterministic, time-ordered id (UUIDv7 layout) from a record's position.

    Time bits come from the record's timestamp so ``_id`` inserts stay
    append-friendly; the rest is a hash of topic, partition and offset, which
    are the same every time the record is delivered.
    """
    digest = hashlib.blake2b(f"{topic}/{partition}/{offset}".encode(), digest_size=10).digest()
    rand = int.from_bytes(digest, "big")  # 80 bits, 74 of which are used
    millis = max(timestamp_ms, 0) & ((1 << 48) - 1)
    value = (millis << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))
    hex_ = f"{value:032x}"
    return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"
