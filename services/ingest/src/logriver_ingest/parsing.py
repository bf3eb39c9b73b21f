"""From a request body stream to a list of raw items, with every size limit enforced
while reading: a client can never make the gateway buffer more than the limits.

An item is either a decoded JSON value (validated later by ``LogEvent``) or a
:class:`LineError` for an NDJSON line that is not JSON; a bad line is that
item's error, not the whole request's.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any

from logriver_common.decoding import parse_json
from logriver_common.event_rule import decode_json_array
from logriver_common.web.errors import ApiError

JSON_TYPES = frozenset({"application/json", ""})
NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/jsonlines"}
)
GZIP_ENCODINGS = frozenset({"gzip", "x-gzip"})


@dataclass(frozen=True, slots=True)
class LineError:
    """An NDJSON line that is not JSON."""

    message: str


@dataclass(frozen=True, slots=True)
class BodyLimits:
    max_body_bytes: int
    max_decompressed_bytes: int
    max_batch_events: int


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_headers(content_type: str | None, content_encoding: str | None) -> tuple[bool, bool]:
    """(is_ndjson, is_gzip), or 415 for a media type or encoding we do not read."""
    kind = media_type(content_type)
    if kind not in JSON_TYPES and kind not in NDJSON_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {kind[:100]!r} is not accepted; send application/json (an object or an "
            "array of objects) or application/x-ndjson (one object per line)",
        )
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in GZIP_ENCODINGS and encoding != "identity":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Encoding {encoding[:100]!r} is not accepted; use gzip or none",
        )
    return kind in NDJSON_TYPES, encoding in GZIP_ENCODINGS


def _too_large(what: str, limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"{what} is larger than {limit} bytes")


class BoundedGunzip:
    """Streaming gzip decoding that stops as soon as the output passes ``limit``.

    ``max_length`` makes zlib produce at most that much per call, so a gzip
    bomb costs the gateway ``limit`` bytes of memory, not its expanded size.
    Concatenated gzip members (allowed by RFC 1952) are decoded in turn.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._parts: list[bytes] = []

    def feed(self, data: bytes) -> None:
        while data:
            try:
                out = self._decoder.decompress(data, self._limit - self._size + 1)
            except zlib.error as exc:
                raise ApiError(400, "malformed_body", f"invalid gzip data: {exc}") from None
            self._size += len(out)
            if self._size > self._limit:
                raise _too_large("the decompressed body", self._limit)
            self._parts.append(out)
            if self._decoder.eof:
                # Another gzip member may follow the one that just ended.
                data = self._decoder.unused_data
                if data:
                    self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                data = self._decoder.unconsumed_tail

    def finish(self) -> bytes:
        if not self._decoder.eof:
            raise ApiError(400, "malformed_body", "the gzip body is truncated")
        return b"".join(self._parts)


async def read_body(
    stream: AsyncIterable[bytes],
    *,
    content_length: str | None,
    gzip: bool,
    limits: BodyLimits,
) -> bytes:
    """The (decompressed) body; 413 as soon as a limit is passed, before reading on."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise ApiError(400, "bad_request", "Content-Length is not a number") from None
        if declared > limits.max_body_bytes:
            raise _too_large("the body", limits.max_body_bytes)
    received = 0
    gunzip = BoundedGunzip(limits.max_decompressed_bytes) if gzip else None
    parts: list[bytes] = []
    async for chunk in stream:
        received += len(chunk)
        if received > limits.max_body_bytes:
            raise _too_large("the body", limits.max_body_bytes)
        if gunzip is not None:
            gunzip.feed(chunk)
        else:
            parts.append(chunk)
    if gunzip is not None:
        return gunzip.finish() if received else b""
    return b"".join(parts)


def _too_many(count: int | str, limit: int) -> ApiError:
    return ApiError(
        413,
        "batch_too_large",
        f"the batch has {count} events; at most {limit} per request "
        "(LOGRIVER_INGEST_MAX_BATCH_EVENTS)",
    )


_ARRAY_START = re.compile(rb"[ \t\r\n]*\[")


def split_items(body: bytes, *, ndjson: bool, max_events: int) -> list[Any]:
    """The request's items (one for a single object); 400 for a body that is not JSON.

    Items are typed :class:`~logriver_common.event_rule.Event` objects when the whole
    array decodes as events, else parsed JSON values (dicts, or whatever was sent).
    """
    if not body.strip():
        raise ApiError(400, "empty_body", "the body holds no events")
    if ndjson:
        return _split_ndjson(body, max_events)
    if _ARRAY_START.match(body):
        events = decode_json_array(body)
        if events is not None:  # every item well typed: no dict per item (the common case)
            return _checked_count(events, max_events)
    try:
        value = parse_json(body)
    except ValueError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid UTF-8 JSON: {exc}") from None
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        raise ApiError(
            400,
            "malformed_body",
            f"the body must be a JSON object or an array of objects, not {type(value).__name__}",
        )
    return _checked_count(value, max_events)


def _checked_count(items: list[Any], max_events: int) -> list[Any]:
    if not items:
        raise ApiError(400, "empty_body", "the array holds no events")
    if len(items) > max_events:
        raise _too_many(len(items), max_events)
    return items


def _split_ndjson(body: bytes, max_events: int) -> list[Any]:
    items: list[Any] = []
    for line in body.split(b"\n"):
        if not line.strip():
            continue  # blank lines (and a trailing newline) are not events
        if len(items) >= max_events:
            raise _too_many(f"more than {max_events}", max_events)
        try:
            items.append(parse_json(line))
        except ValueError as exc:
            items.append(LineError(f"the line is not valid UTF-8 JSON: {exc}"))
    if not items:
        raise ApiError(400, "empty_body", "the body holds no events")
    return items
