"""What a notification says, independent of the channel that renders it.

It is stored as the outbox row's payload, so a notification delivered after a
restart says exactly what it said when the transition happened.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict

Kind = Literal["firing", "resolved", "reminder", "test"]


class TopMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    message: str
    count: int


class AlertMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Kind
    alert_id: int | None
    rule_id: str
    rule_name: str
    severity: str
    labels: dict[str, str]
    service: str
    condition: Literal["error_rate", "count"]
    level: str
    value: float
    threshold: float
    matched: int
    total: int
    window_seconds: int
    top_messages: list[TopMessage]
    sample_trace_id: str | None
    started_at: datetime
    resolved_at: datetime | None = None
    console_url: str
    trace_url: str | None

    @property
    def title(self) -> str:
        state = {
            "firing": "FIRING",
            "resolved": "RESOLVED",
            "reminder": "STILL FIRING",
            "test": "TEST",
        }[self.kind]
        return f"[{state}] {self.rule_name} on {self.service}"

    def value_text(self) -> str:
        if self.condition == "error_rate":
            return (
                f"error rate {self.value:.1%} (threshold {self.threshold:.1%}; "
                f"{self.matched} of {self.total} events at {self.level} or above)"
            )
        return f"{self.matched} events at {self.level} or above (threshold {int(self.threshold)})"

    def window_text(self) -> str:
        seconds = self.window_seconds
        if seconds % 60 == 0:
            return f"{seconds // 60} min"
        return f"{seconds} s"


def console_link(base_url: str, service: str) -> str:
    return f"{base_url.rstrip('/')}/?{urlencode({'service': service})}"


def trace_link(console_base_url: str, trace_id: str | None) -> str | None:
    """The console's trace view: the trace's spans (from Jaeger) and its logs, on one axis."""
    if not trace_id:
        return None
    return f"{console_base_url.rstrip('/')}/trace.html?{urlencode({'trace_id': trace_id})}"
