"""The fingerprint state machine as a table of decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from logriver_alerter.lifecycle import Action, ActiveState, decide

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def state(kind: str, pending_for: float = 0, notified_ago: float | None = None) -> ActiveState:
    notified = NOW - timedelta(seconds=notified_ago) if notified_ago is not None else None
    return ActiveState(1, kind, NOW - timedelta(seconds=pending_for), notified)


@pytest.mark.parametrize(
    ("active", "condition", "for_s", "remind_s", "expected"),
    [
        (None, False, 0, None, Action.NONE),
        (None, True, 0, None, Action.OPEN),
        (None, True, 60, None, Action.OPEN),
        (state("pending", 30), True, 60, None, Action.NONE),
        (state("pending", 60), True, 60, None, Action.FIRE),
        (state("pending", 30), False, 60, None, Action.CANCEL),
        (state("firing", notified_ago=10), True, 0, None, Action.NONE),
        (state("firing", notified_ago=10), True, 0, 60, Action.NONE),
        (state("firing", notified_ago=60), True, 0, 60, Action.REMIND),
        (state("firing", notified_ago=600), False, 0, 60, Action.RESOLVE),
    ],
)
def test_decide(
    active: ActiveState | None,
    condition: bool,
    for_s: int,
    remind_s: int | None,
    expected: Action,
) -> None:
    assert decide(active, condition, NOW, for_seconds=for_s, reminder_seconds=remind_s) is expected
