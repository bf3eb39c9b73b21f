"""Resume ids: an opaque, compact encoding of per-partition positions.

A cursor says "every record below these offsets has been delivered to this
client or did not match its filter". Because the vector covers every partition,
it is meaningful on any instance reading the same topic, which is what makes
resume work across instances and restarts.

Layout (then base64url without padding)::

    version (1 byte) | topic tag (4 bytes) | n (varint) | n x (partition gap, next offset)

Partition numbers are gap-encoded (usually 0) and offsets are varints, so six
partitions cost about 40 characters. The topic tag rejects a cursor issued for
another topic instead of silently replaying the wrong offsets. Cursors are not
signed: they carry no authority, only positions, and every position is checked
against the topic's real offsets before use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping

VERSION = 1
MAX_CURSOR_CHARS = 1_024
_MAX_PARTITIONS = 10_000
_MAX_OFFSET = 2**63 - 1
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")

Position = Mapping[int, int]


class CursorError(ValueError):
    """A resume id that cannot be decoded (malformed, truncated, other topic)."""


def topic_tag(topic: str) -> bytes:
    return hashlib.blake2b(topic.encode(), digest_size=4).digest()


def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _get_varint(data: bytes, index: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if index >= len(data):
            raise CursorError("truncated resume id")
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index
        shift += 7
        if shift > 63:
            raise CursorError("resume id has an oversized number")


class CursorCodec:
    """Encodes and decodes cursors for one topic."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._header = bytes([VERSION]) + topic_tag(topic)

    def encode(self, position: Position) -> str:
        out = bytearray(self._header)
        _put_varint(out, len(position))
        previous = -1
        for partition in sorted(position):
            _put_varint(out, partition - previous - 1)
            _put_varint(out, position[partition])
            previous = partition
        return base64.urlsafe_b64encode(out).rstrip(b"=").decode("ascii")

    def decode(self, text: str) -> dict[int, int]:
        if not text or len(text) > MAX_CURSOR_CHARS or not _BASE64URL.match(text):
            raise CursorError("resume id is not a stream cursor")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise CursorError("resume id is not valid base64url") from None
        if len(raw) < len(self._header) + 1 or raw[0] != VERSION:
            raise CursorError("resume id has an unknown format")
        if raw[1 : len(self._header)] != self._header[1:]:
            raise CursorError("resume id belongs to another topic")
        count, index = _get_varint(raw, len(self._header))
        if count > _MAX_PARTITIONS:
            raise CursorError("resume id names too many partitions")
        position: dict[int, int] = {}
        partition = -1
        for _ in range(count):
            gap, index = _get_varint(raw, index)
            offset, index = _get_varint(raw, index)
            partition += gap + 1
            if partition > _MAX_PARTITIONS or offset > _MAX_OFFSET:
                raise CursorError("resume id is out of range")
            position[partition] = offset
        if index != len(raw):
            raise CursorError("resume id has trailing data")
        return position


def merge(a: Position, b: Position) -> dict[int, int]:
    """Element-wise maximum: the further of two positions on every partition."""
    merged = dict(a)
    for partition, offset in b.items():
        if offset > merged.get(partition, -1):
            merged[partition] = offset
    return merged
