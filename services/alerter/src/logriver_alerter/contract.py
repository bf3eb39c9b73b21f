"""The alerter API's typed contract: response models and every status code it answers.

Request bodies are the specs in ``rules.py`` (strict: they refuse what they do
not know). The response models here are deliberately loose: they describe what
a stored object looks like without re-checking it, so an object that was valid
when stored (a silence expired before it started, a rule whose channel rules
changed) is still returned, never turned into a 500 by its own answer.

Every refusal is the one error shape (:class:`ErrorBody`); the codes each
operation can answer are listed with it, so the OpenAPI document is the whole
contract (schemathesis checks the service against it).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    """The one error shape of every logriver service."""

    error: str = Field(description="A stable machine-readable code, e.g. `not_found`.")
    detail: Any = Field(default=None, description="Text, or a list of field errors.")
    request_id: str | None = None


_ERRORS = {
    400: "The body could not be parsed (not UTF-8, or cut short).",
    401: "No valid API key (`Authorization: Bearer <key>` or `X-API-Key`).",
    403: "The key lacks the `admin` scope.",
    404: "No such object.",
    409: "The change conflicts with stored state (a name in use, a channel rules use).",
    413: "The body is larger than 1 MiB.",
    415: "The body is not JSON (`Content-Type` must be `application/json`).",
    422: "A parameter or body field is invalid; `detail` lists each field error.",
    503: "PostgreSQL is unavailable; retry later.",
}
ALWAYS = (401, 403, 422, 503)
WITH_BODY = (*ALWAYS, 400, 413, 415)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of an operation (always 401, 403, 422 and 503)."""
    return {
        code: {"model": ErrorBody, "description": _ERRORS[code]}
        for code in sorted({*ALWAYS, *codes})
    }


class _Out(BaseModel):
    # Stored objects may carry fields newer than this document; pass them through.
    model_config = ConfigDict(extra="allow")


class RuleOut(_Out):
    id: str
    name: str
    services: list[str]
    condition: dict[str, Any]
    window_seconds: int
    min_events: int
    for_seconds: int
    reminder_seconds: int | None = None
    severity: str
    channels: list[str]
    labels: dict[str, str]
    enabled: bool
    created_at: str
    updated_at: str


class RuleList(BaseModel):
    rules: list[RuleOut]


class ChannelOut(_Out):
    """A channel's config with secrets, URL tokens and header values masked (`***`)."""

    name: str
    type: str
    url: str


class ChannelList(BaseModel):
    channels: list[ChannelOut]


class TestFireResult(BaseModel):
    channel: str
    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: float


class AlertOut(_Out):
    id: int
    rule_id: str
    rule_name: str
    service: str
    severity: str
    labels: dict[str, str]
    state: str
    pending_since: str
    fired_at: str | None
    resolved_at: str | None
    resolved_reason: str | None
    value: float
    threshold: float
    matched: int
    total: int
    window_seconds: int
    peak_value: float
    last_value: float | None
    last_evaluated_at: str | None
    last_notified_at: str | None
    silenced: bool
    details: dict[str, Any]


class AlertDetail(AlertOut):
    deliveries: list[dict[str, Any]] = Field(description="Every delivery attempt, oldest first.")


class CurrentAlerts(BaseModel):
    alerts: list[AlertOut]


class AlertHistory(BaseModel):
    alerts: list[AlertOut]
    next_before_id: int | None = Field(
        description="Pass as `before_id` for the next page; null on the last page."
    )


class SilenceOut(_Out):
    id: str
    rule_id: str | None
    service: str | None
    labels: dict[str, str]
    starts_at: str
    ends_at: str
    comment: str
    created_at: str


class SilenceList(BaseModel):
    silences: list[SilenceOut]


class Status(BaseModel):
    group_id: str
    topic: str
    partitions: list[int]
    rules: int
    services: int
    active_alerts: int
