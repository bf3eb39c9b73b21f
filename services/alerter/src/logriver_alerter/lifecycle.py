"""The per-fingerprint state machine, as a pure decision: what should happen now?

    (none) ──condition──▶ pending ──held `for`──▶ firing ──condition gone──▶ resolved
                             └──condition gone──▶ (dropped, nothing was announced)

The caller carries the decision out against PostgreSQL, where a conditional
UPDATE decides which instance's transition counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum


class Action(Enum):
    NONE = "none"
    OPEN = "open"  # start pending (and fire at once when `for` is 0)
    FIRE = "fire"
    RESOLVE = "resolve"
    CANCEL = "cancel"  # a pending alert whose condition went away before `for` elapsed
    REMIND = "remind"


@dataclass(frozen=True, slots=True)
class ActiveState:
    """What an instance knows about an open incident (mirrors the PostgreSQL row)."""

    alert_id: int
    state: str  # "pending" or "firing"
    pending_since: datetime
    last_notified_at: datetime | None


def decide(
    active: ActiveState | None,
    condition: bool,
    now: datetime,
    *,
    for_seconds: int,
    reminder_seconds: int | None,
) -> Action:
    if active is None:
        return Action.OPEN if condition else Action.NONE
    if active.state == "pending":
        if not condition:
            return Action.CANCEL
        if now - active.pending_since >= timedelta(seconds=for_seconds):
            return Action.FIRE
        return Action.NONE
    # firing
    if not condition:
        return Action.RESOLVE
    if (
        reminder_seconds is not None
        and active.last_notified_at is not None
        and now - active.last_notified_at >= timedelta(seconds=reminder_seconds)
    ):
        return Action.REMIND
    return Action.NONE
