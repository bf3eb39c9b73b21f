from __future__ import annotations

import random

import pytest

from logriver_common.consumer_kit.backoff import Backoff
from logriver_common.consumer_kit.dead_letters import (
    MAX_DLQ_VALUE_BYTES,
    DlqRatioGuard,
    dlq_headers,
)
from logriver_writer.decode import Rejected, RejectReason
from tests.unit.writer.fakes import FakeRecord


def test_dlq_headers_name_reason_and_source_and_keep_trace_context() -> None:
    record = FakeRecord(
        b"nope",
        offset=812,
        partition=4,
        headers=[("traceparent", b"00-abc"), ("x-dlq-reason", b"x")],
    )
    headers = dlq_headers(Rejected(record, RejectReason.NOT_JSON, "value is not JSON: ..."))
    as_dict = dict(headers)
    assert as_dict["x-dlq-reason"] == b"not_json"
    assert as_dict["x-dlq-detail"].startswith(b"value is not JSON")
    assert as_dict["x-source-topic"] == b"logs.test"
    assert as_dict["x-source-partition"] == b"4"
    assert as_dict["x-source-offset"] == b"812"
    assert as_dict["traceparent"] == b"00-abc"
    # A stale reason from an earlier hop is replaced, not duplicated.
    assert [k for k, _ in headers].count("x-dlq-reason") == 1
    assert "x-dlq-truncated-from" not in as_dict


def test_oversized_values_are_marked_as_truncated() -> None:
    record = FakeRecord(b"x" * (MAX_DLQ_VALUE_BYTES + 1))
    headers = dict(dlq_headers(Rejected(record, RejectReason.TOO_LARGE, "big")))
    assert headers["x-dlq-truncated-from"] == str(MAX_DLQ_VALUE_BYTES + 1).encode()


def test_guard_needs_enough_records_before_it_trips() -> None:
    guard = DlqRatioGuard(limit=0.9, window=100, min_records=50)
    guard.observe(accepted=0, rejected=49)
    assert guard.tripped() is None  # 100% bad, but too few records to judge
    guard.observe(accepted=0, rejected=1)
    reason = guard.tripped()
    assert reason is not None
    assert "50 of the last 50" in reason


def test_guard_tolerates_a_burst_below_the_limit() -> None:
    guard = DlqRatioGuard(limit=0.9, window=100, min_records=10)
    guard.observe(accepted=15, rejected=85)
    assert guard.ratio == pytest.approx(0.85)
    assert guard.tripped() is None


def test_guard_window_forgets_old_records() -> None:
    guard = DlqRatioGuard(limit=0.5, window=10, min_records=10)
    guard.observe(accepted=0, rejected=10)
    assert guard.tripped() is not None
    guard.observe(accepted=6, rejected=0)
    assert guard.ratio == pytest.approx(0.4)
    assert guard.tripped() is None


def test_backoff_grows_exponentially_and_stays_bounded() -> None:
    backoff = Backoff(0.1, 2.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(50)]
    assert 0.08 <= delays[0] <= 0.12
    assert 0.16 <= delays[1] <= 0.24
    assert all(d <= 2.0 for d in delays)
    assert min(delays[10:]) >= 1.6  # at the cap (minus jitter), not growing without bound
    backoff.reset()
    assert backoff.next_delay() <= 0.12
