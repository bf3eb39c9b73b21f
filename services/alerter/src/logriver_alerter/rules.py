"""Alert rules and channels as the API accepts them: strict models, field-level errors.

Everything here is pure validation; whether a referenced channel exists is
checked against PostgreSQL by the routes, with the same error shape.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    field_validator,
    model_validator,
)

from logriver_alerter.channel_safety import MASK, masked
from logriver_common.documents import LEVELS

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._:\-]{0,127}$"
CHANNEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"
# A service name, optionally with glob characters (`checkout-*`, `api-?`, `*`).
SELECTOR_PATTERN = r"^[A-Za-z0-9._\-*?\[\]!]{1,64}$"
LABEL_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,62}$"
# Ids the API hands out (secrets.token_hex), generous enough for hand-made ones.
ID_PATTERN = r"^[A-Za-z0-9._\-]{1,128}$"
MAX_WINDOW_S = 3600


def clean_text(value: str) -> str:
    """Text PostgreSQL can store: no NUL (text and jsonb refuse it), valid UTF-8."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


Text = Annotated[str, AfterValidator(clean_text)]

Severity = Literal["info", "warning", "critical"]
LevelName = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LabelKey = Annotated[str, Field(pattern=LABEL_KEY_PATTERN)]
Labels = dict[LabelKey, Annotated[Text, Field(max_length=256)]]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorRateCondition(Strict):
    """Events at or above ``level`` divided by all events in the window, ``>= threshold``."""

    type: Literal["error_rate"]
    level: LevelName = "ERROR"
    threshold: float = Field(gt=0, le=1, description="A fraction: 0.05 means 5%.")


class CountCondition(Strict):
    """Events at or above ``level`` in the window, ``>= threshold``."""

    type: Literal["count"]
    level: LevelName = "ERROR"
    threshold: int = Field(ge=1, le=100_000_000)


Condition = Annotated[ErrorRateCondition | CountCondition, Field(discriminator="type")]


class RuleSpec(Strict):
    """What a user sends to create or replace a rule."""

    name: str = Field(pattern=NAME_PATTERN)
    services: list[Annotated[str, Field(pattern=SELECTOR_PATTERN)]] = Field(
        min_length=1,
        max_length=100,
        description='Service names or globs; `["*"]` selects every service.',
    )
    condition: Condition
    window_seconds: int = Field(ge=1, le=MAX_WINDOW_S)
    min_events: int = Field(default=10, ge=1, le=100_000_000)
    for_seconds: int = Field(default=0, ge=0, le=86_400)
    reminder_seconds: int | None = Field(
        default=3600, ge=10, le=7 * 86_400, description="Re-notify while firing; null: never."
    )
    severity: Severity = "warning"
    channels: list[Annotated[str, Field(pattern=CHANNEL_NAME_PATTERN)]] = Field(
        default_factory=list, max_length=20
    )
    labels: Labels = Field(default_factory=dict, max_length=32)
    enabled: bool = True

    @field_validator("services", "channels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("entries must be unique")
        return value

    @field_validator("services")
    @classmethod
    def _valid_globs(cls, value: list[str]) -> list[str]:
        for selector in value:
            try:
                re.compile(fnmatch.translate(selector))
            except re.error as exc:
                raise ValueError(f"{selector!r} is not a valid glob: {exc}") from None
        return value

    @model_validator(mode="after")
    def _count_needs_enough_events(self) -> RuleSpec:
        condition = self.condition
        if isinstance(condition, CountCondition) and self.min_events > condition.threshold:
            raise ValueError("min_events cannot exceed a count threshold (the rule could not fire)")
        return self

    def matches(self, service: str) -> bool:
        return any(fnmatch.fnmatchcase(service, selector) for selector in self.services)

    @property
    def level_index(self) -> int:
        return LEVELS.index(self.condition.level)


class Rule(RuleSpec):
    """A stored rule."""

    id: str
    created_at: datetime
    updated_at: datetime


class SlackChannel(Strict):
    type: Literal["slack"]
    url: AnyHttpUrl = Field(description="The incoming-webhook URL.")


class DingTalkChannel(Strict):
    type: Literal["dingtalk"]
    url: AnyHttpUrl = Field(description="The robot's webhook URL, with its access_token.")
    secret: Text = Field(min_length=1, max_length=256, description="The robot's signing secret.")


class WebhookChannel(Strict):
    type: Literal["webhook"]
    url: AnyHttpUrl
    secret: Text | None = Field(
        default=None,
        max_length=256,
        description="Enables X-Logriver-Signature; at least 16 characters.",
    )
    # Names and values are checked by `header_problems` when a channel is written, not
    # here: a channel stored before those checks must still load (and then fail to send).
    headers: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9\-]{1,64}$")], str] = Field(
        default_factory=dict, max_length=20
    )

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        # The mask stands for the stored secret (see channel_safety.restore).
        if value is not None and value != MASK and len(value) < 16:
            raise ValueError("a signing secret has at least 16 characters")
        return value


ChannelConfig = Annotated[
    SlackChannel | DingTalkChannel | WebhookChannel, Field(discriminator="type")
]


class ChannelSpec(RootModel[ChannelConfig]):
    """A channel definition as the API accepts it (the name is in the path)."""


class Channel(Strict):
    name: str
    config: ChannelConfig

    def public(self) -> dict[str, Any]:
        """The API view: secrets, URL tokens and header values are masked."""
        return {"name": self.name, **masked(self.config.model_dump(mode="json"))}


def storable_time(value: datetime) -> datetime:
    """A time PostgreSQL's timestamptz can take: it must exist in UTC as well (asyncpg
    converts to UTC, a naive time from the server's local time)."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None
    return value


StorableTime = Annotated[datetime, AfterValidator(storable_time)]


class SilenceSpec(Strict):
    """Mute notifications for matching alerts until ``ends_at``; at least one matcher."""

    rule_id: Annotated[str, Field(pattern=ID_PATTERN)] | None = None
    service: Annotated[str, Field(pattern=SELECTOR_PATTERN)] | None = None
    labels: Labels = Field(default_factory=dict, max_length=32)
    starts_at: StorableTime | None = None
    ends_at: StorableTime
    comment: Text = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _matcher_and_order(self) -> SilenceSpec:
        if self.rule_id is None and self.service is None and not self.labels:
            raise ValueError("a silence needs rule_id, service or labels")
        if self.ends_at.tzinfo is None or (
            self.starts_at is not None and self.starts_at.tzinfo is None
        ):
            raise ValueError("starts_at and ends_at need a UTC offset")
        if self.starts_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class Silence(Strict):
    id: str
    rule_id: str | None
    service: str | None
    labels: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_at: datetime

    def matches(self, rule: RuleSpec, rule_id: str, service: str, now: datetime) -> bool:
        if not (self.starts_at <= now < self.ends_at):
            return False
        if self.rule_id is not None and self.rule_id != rule_id:
            return False
        if self.service is not None and not fnmatch.fnmatchcase(service, self.service):
            return False
        return all(rule.labels.get(k) == v for k, v in self.labels.items())
