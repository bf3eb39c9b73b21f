from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logriver_stream.cursor import CursorCodec, CursorError, merge

CODEC = CursorCodec("logs.v1")


@given(st.dictionaries(st.integers(0, 9_999), st.integers(0, 2**63 - 1), max_size=64))
def test_round_trip(position: dict[int, int]) -> None:
    assert CODEC.decode(CODEC.encode(position)) == position


def test_compact_and_url_safe() -> None:
    text = CODEC.encode({p: 1_000_000 + p for p in range(6)})
    assert len(text) <= 48
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "not a stream cursor"),
        ("not a cursor!", "not a stream cursor"),
        ("x" * 2000, "not a stream cursor"),
        ("A", "base64url"),
        (_b64(b"\x09abcd\x00"), "unknown format"),
        (_b64(b"\x01\x00\x00\x00\x00\x00"), "another topic"),
        (CODEC.encode({0: 5, 1: 7})[:-3], "truncated"),
        (_b64(base64.urlsafe_b64decode(CODEC.encode({0: 5}) + "==") + b"\x00"), "trailing"),
    ],
)
def test_malformed_cursors_are_rejected(text: str, why: str) -> None:
    with pytest.raises(CursorError, match=why):
        CODEC.decode(text)


def test_forged_huge_numbers_are_rejected() -> None:
    header = base64.urlsafe_b64decode(CODEC.encode({}) + "==")[:5]
    oversized = header + b"\x01\x00" + b"\xff" * 10 + b"\x01"
    with pytest.raises(CursorError, match="oversized"):
        CODEC.decode(_b64(oversized))
    too_many = header + b"\xff\xff\x03"
    with pytest.raises(CursorError, match="too many partitions"):
        CODEC.decode(_b64(too_many))


def test_other_topic_is_rejected() -> None:
    with pytest.raises(CursorError, match="another topic"):
        CursorCodec("other").decode(CODEC.encode({0: 1}))


def test_merge_takes_the_further_offset_per_partition() -> None:
    assert merge({0: 5, 1: 9}, {0: 7, 2: 1}) == {0: 7, 1: 9, 2: 1}
