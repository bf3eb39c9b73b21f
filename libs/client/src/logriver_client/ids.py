"""Client-side event ids: the gateway and the writer use ``id`` as an idempotency key.

An event keeps the id it got when it was first encoded, so a retry after a
lost response (the gateway stored it, the reply never arrived) is stored once.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so MongoDB ``_id`` inserts stay append-friendly.

    The standard library gains ``uuid.uuid7`` only in Python 3.14, and the client
    must stay dependency-free, so the 128 bits are laid out here.
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 random bits; 74 are used
    value = (millis & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b (62 bits)
    return str(uuid.UUID(int=value))


def stream_token() -> str:
    """A random token naming one stream of bytes (one file generation) for the shipper."""
    return os.urandom(8).hex()


def line_event_id(stream: str, offset: int) -> str:
    """The deterministic id of the record that starts at ``offset`` in ``stream``.

    Re-reading a file after a crash yields the same ids, so the pipeline stores
    re-sent lines once. ``stream`` is persisted in the checkpoint before the
    first line of the stream is sent.
    """
    return f"f{stream}-{offset:x}"


def short_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()
