"""Rule, channel and silence validation, and selector matching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from logriver_alerter.rules import ChannelSpec, Rule, RuleSpec, Silence, SilenceSpec

BASE: dict[str, Any] = {
    "name": "api errors",
    "services": ["api"],
    "condition": {"type": "error_rate", "threshold": 0.1},
    "window_seconds": 60,
}
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def rule(**change: Any) -> RuleSpec:
    return RuleSpec.model_validate({**BASE, **change})


def error_locs(**change: Any) -> list[tuple[int | str, ...]]:
    with pytest.raises(ValidationError) as info:
        rule(**change)
    return [e["loc"] for e in info.value.errors()]


def test_defaults() -> None:
    spec = rule()
    assert spec.min_events == 10
    assert spec.for_seconds == 0
    assert spec.reminder_seconds == 3600
    assert spec.condition.level == "ERROR"
    assert spec.level_index == 3


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"window_seconds": 0}, ("window_seconds",)),
        ({"window_seconds": -1}, ("window_seconds",)),
        (
            {"condition": {"type": "error_rate", "threshold": 0}},
            ("condition", "error_rate", "threshold"),
        ),
        (
            {"condition": {"type": "error_rate", "threshold": 1.01}},
            ("condition", "error_rate", "threshold"),
        ),
        ({"services": ["a", "a"]}, ("services",)),
        ({"channels": ["x y"]}, ("channels", 0)),
        ({"labels": {"$bad": "x"}}, ("labels", "$bad", "[key]")),
        ({"reminder_seconds": 1}, ("reminder_seconds",)),
        ({"name": ""}, ("name",)),
    ],
)
def test_invalid_rules_name_the_field(change: dict[str, Any], loc: tuple[int | str, ...]) -> None:
    assert loc in error_locs(**change)


def test_selectors_match_names_and_globs() -> None:
    spec = rule(services=["checkout", "api-*"])
    assert spec.matches("checkout")
    assert spec.matches("api-eu")
    assert not spec.matches("checkout-2")
    assert rule(services=["*"]).matches("anything")


def test_channels_validate_urls_and_secrets() -> None:
    ok = ChannelSpec.model_validate(
        {"type": "webhook", "url": "https://x.test/h", "secret": "s" * 16}
    )
    assert ok.root.type == "webhook"
    for bad in (
        {"type": "slack", "url": "hooks.slack.com/x"},
        {"type": "dingtalk", "url": "https://x.test"},
        {"type": "webhook", "url": "https://x.test", "extra": 1},
    ):
        with pytest.raises(ValidationError):
            ChannelSpec.model_validate(bad)


def test_silences_need_a_matcher_and_match_rule_service_and_labels() -> None:
    with pytest.raises(ValidationError):
        SilenceSpec.model_validate({"ends_at": NOW.isoformat()})
    with pytest.raises(ValidationError):
        SilenceSpec.model_validate(
            {"service": "a", "starts_at": NOW.isoformat(), "ends_at": NOW.isoformat()}
        )
    stored = Rule.model_validate(
        {**BASE, "labels": {"team": "pay"}, "id": "r1", "created_at": NOW, "updated_at": NOW}
    )
    silence = Silence(
        id="s",
        rule_id=None,
        service="api*",
        labels={"team": "pay"},
        starts_at=NOW,
        ends_at=NOW + timedelta(hours=1),
        comment="",
        created_at=NOW,
    )
    assert silence.matches(stored, "r1", "api-eu", NOW)
    assert not silence.matches(stored, "r1", "web", NOW)
    assert not silence.matches(stored, "r1", "api", NOW + timedelta(hours=1))
    other_team = silence.model_copy(update={"labels": {"team": "search"}})
    assert not other_team.matches(stored, "r1", "api", NOW)
