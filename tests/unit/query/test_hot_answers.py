"""The hot-answer store: byte-bounded, least recently used first, never past an entry's age."""

from __future__ import annotations

import time

from logriver_query.hot_answers import HotAnswers


def scope(query: bytes) -> dict[str, object]:
    return {"path": "/v1/stats/histogram", "query_string": query, "route": None}


# What one entry with a one-byte query string costs besides its body.
ENTRY = len("/v1/stats/histogram") + 1 + 200


def test_bounded_by_bytes_least_recently_used_first() -> None:
    answers = HotAnswers(max_age_s=60, max_bytes=3 * ENTRY + 100)
    answers.put(scope(b"a"), b"x" * 40, 60)
    answers.put(scope(b"b"), b"y" * 40, 60)
    assert answers.get(scope(b"a")) is not None  # a is now the most recently used
    answers.put(scope(b"c"), b"z" * 40, 60)
    assert answers.get(scope(b"b")) is None
    assert answers.get(scope(b"a")) is not None
    assert answers.get(scope(b"c")) is not None
    assert answers.size_bytes == 2 * ENTRY + 80
    answers.put(scope(b"h"), b"w" * (3 * ENTRY + 100), 60)  # larger than the store: not kept
    assert answers.get(scope(b"h")) is None
    answers.put(scope(b"a"), b"v" * 10, 60)  # replacing an entry frees its old bytes
    assert answers.size_bytes == 2 * ENTRY + 50


def test_keys_count_against_the_bound() -> None:
    """Long, distinct query strings with tiny answers cannot grow the store past its bound."""
    answers = HotAnswers(max_age_s=60, max_bytes=100_000)
    for n in range(1_000):
        answers.put(scope(b"q=%d&" % n + b"x" * 8_000), b"{}", 60)
    assert answers.size_bytes <= 100_000
    assert answers.get(scope(b"q=999&" + b"x" * 8_000)) is not None
    assert answers.get(scope(b"q=0&" + b"x" * 8_000)) is None


def test_an_entry_lives_the_shorter_of_its_freshness_and_the_cap() -> None:
    answers = HotAnswers(max_age_s=0.05, max_bytes=1_000)
    answers.put(scope(b"capped"), b"1", 60)
    answers.put(scope(b"short"), b"2", 0.01)
    answers.put(scope(b"never"), b"3", 0)
    assert answers.get(scope(b"never")) is None
    assert answers.get(scope(b"short")) is not None
    time.sleep(0.02)
    assert answers.get(scope(b"short")) is None
    assert answers.get(scope(b"capped")) is not None
    time.sleep(0.04)
    assert answers.get(scope(b"capped")) is None
    assert answers.size_bytes == 0
