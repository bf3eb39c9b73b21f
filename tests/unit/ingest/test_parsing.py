"""Body reading and splitting: every limit is enforced while reading, not after."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import orjson
import pytest

from logriver_common.web.errors import ApiError
from logriver_ingest.parsing import (
    BodyLimits,
    BoundedGunzip,
    LineError,
    check_headers,
    read_body,
    split_items,
)

LIMITS = BodyLimits(max_body_bytes=10_000, max_decompressed_bytes=50_000, max_batch_events=5)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


class CountingStream:
    """A stream that records how much of it was consumed."""

    def __init__(self, chunk: bytes, count: int) -> None:
        self.chunk = chunk
        self.count = count
        self.consumed = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.consumed += 1
            yield self.chunk


def raises(status: int, error: str) -> pytest.RaisesExc[ApiError]:
    return pytest.raises(ApiError, check=lambda e: (e.status_code, e.error) == (status, error))


@pytest.mark.parametrize(
    ("content_type", "encoding", "expected"),
    [
        (None, None, (False, False)),
        ("application/json; charset=utf-8", None, (False, False)),
        ("application/x-ndjson", "gzip", (True, True)),
        ("Application/X-NDJSON", "x-gzip", (True, True)),
        ("application/json", "identity", (False, False)),
    ],
)
def test_accepted_media_types(
    content_type: str | None, encoding: str | None, expected: tuple[bool, bool]
) -> None:
    assert check_headers(content_type, encoding) == expected


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [("text/plain", None), ("application/xml", None), ("application/json", "br")],
)
def test_unsupported_media_types_get_415(content_type: str, encoding: str | None) -> None:
    with raises(415, "unsupported_media_type"):
        check_headers(content_type, encoding)


async def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    stream = CountingStream(b"x" * 100, 1_000)
    with raises(413, "payload_too_large"):
        await read_body(stream, content_length="100000", gzip=False, limits=LIMITS)
    assert stream.consumed == 0


async def test_streamed_body_stops_at_the_limit() -> None:
    stream = CountingStream(b"x" * 1_000, 1_000)
    with raises(413, "payload_too_large"):
        await read_body(stream, content_length=None, gzip=False, limits=LIMITS)
    assert stream.consumed == 11  # 11 KB read of a 1 MB body, then refused


async def test_bad_content_length_is_a_400() -> None:
    with raises(400, "bad_request"):
        await read_body(chunks(b"{}"), content_length="ten", gzip=False, limits=LIMITS)


async def test_gzip_body_is_decompressed() -> None:
    body = b'{"service":"a","message":"m"}'
    compressed = gzip.compress(body)
    parts = [compressed[:5], compressed[5:]]
    assert await read_body(chunks(*parts), content_length=None, gzip=True, limits=LIMITS) == body


async def test_concatenated_gzip_members_are_one_body() -> None:
    body = gzip.compress(b'{"service":"a",') + gzip.compress(b'"message":"m"}')
    out = await read_body(chunks(body), content_length=None, gzip=True, limits=LIMITS)
    assert out == b'{"service":"a","message":"m"}'


def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b"\0" * 20_000_000, compresslevel=9)  # ~20 KB on the wire
    gunzip = BoundedGunzip(limit=50_000)
    with raises(413, "payload_too_large"):
        gunzip.feed(bomb)
    # Never more than limit + 1 bytes were produced, not 20 MB.
    assert sum(len(p) for p in gunzip._parts) <= 50_001


async def test_truncated_and_corrupt_gzip_are_400() -> None:
    compressed = gzip.compress(b'{"service":"a","message":"m"}')
    with raises(400, "malformed_body"):
        await read_body(chunks(compressed[:-6]), content_length=None, gzip=True, limits=LIMITS)
    with raises(400, "malformed_body"):
        await read_body(chunks(b"not gzip at all"), content_length=None, gzip=True, limits=LIMITS)
    raw_deflate = zlib.compress(b"{}")
    with raises(400, "malformed_body"):
        await read_body(chunks(raw_deflate), content_length=None, gzip=True, limits=LIMITS)


def test_object_array_and_ndjson_split() -> None:
    assert split_items(b'{"a":1}', ndjson=False, max_events=5) == [{"a": 1}]
    assert split_items(b'[{"a":1},2]', ndjson=False, max_events=5) == [{"a": 1}, 2]
    items = split_items(b'{"a":1}\r\n\n{"b":\n[3]\n', ndjson=True, max_events=5)
    assert items[0] == {"a": 1}
    assert isinstance(items[1], LineError)
    assert items[2] == [3]


@pytest.mark.parametrize(
    ("body", "ndjson", "status", "error"),
    [
        (b"", False, 400, "empty_body"),
        (b"  \n ", True, 400, "empty_body"),
        (b"[]", False, 400, "empty_body"),
        (b"{not json", False, 400, "malformed_json"),
        (b'{"a": "\xff\xfe"}', False, 400, "malformed_json"),
        (b'"a string"', False, 400, "malformed_body"),
        (b"42", False, 400, "malformed_body"),
        (orjson.dumps([{}] * 6), False, 413, "batch_too_large"),
        (b"{}\n" * 6, True, 413, "batch_too_large"),
    ],
)
def test_bodies_that_are_refused_whole(body: bytes, ndjson: bool, status: int, error: str) -> None:
    with raises(status, error):
        split_items(body, ndjson=ndjson, max_events=5)


def test_invalid_utf8_in_one_ndjson_line_fails_only_that_line() -> None:
    items = split_items(b'{"a":1}\n{"b":"\xff"}\n', ndjson=True, max_events=5)
    assert items[0] == {"a": 1}
    assert isinstance(items[1], LineError)
    assert "UTF-8" in items[1].message or "utf-8" in items[1].message.lower()
