"""Retry rules of the HTTP transport that need no server: queue, backoff, Retry-After, chunks.

The rules that need a gateway run against a loopback stand-in in
tests/integration/client/test_transport_retries.py (a socket is network).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from logriver_client.queue import DropOldestQueue
from logriver_client.retry import RetryPolicy, parse_retry_after
from logriver_client.transport import EncodedEvent, chunk_by_size


def events(n: int) -> list[EncodedEvent]:
    return [EncodedEvent("svc", f'{{"id":"e{i}","service":"svc","message":"m{i}"}}'.encode())
            for i in range(n)]  # fmt: skip


def test_queue_overflow_drops_oldest_and_counts() -> None:
    queue: DropOldestQueue[int] = DropOldestQueue(5, wake_at=3)
    for i in range(12):
        queue.put(i)
    assert queue.dropped == 7
    assert queue.put_count == 12
    assert queue.take(100) == [7, 8, 9, 10, 11]


def test_backoff_is_exponential_capped_and_retry_after_wins() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0, max_retry_after=10)
    for attempt in range(1, 20):
        ceiling = min(1.0, 0.1 * 2 ** (attempt - 1))
        assert ceiling / 2 <= policy.backoff(attempt) <= ceiling
    assert policy.delay(3, 2.5) == 2.5
    assert policy.delay(3, 3600) == 10


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now=now) == 7
    assert parse_retry_after(format_datetime(now - timedelta(seconds=7), usegmt=True), now=now) == 0


def test_large_batches_are_split_by_request_size() -> None:
    chunks = chunk_by_size(events(100), 200)
    assert all(sum(len(e.data) + 1 for e in c) <= 200 for c in chunks)
    assert sum(len(c) for c in chunks) == 100
