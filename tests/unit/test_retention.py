from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from logriver_common.event import Level
from logriver_common.retention import RetentionPolicy
from logriver_writer.settings import WriterSettings

POLICY = RetentionPolicy.model_validate(
    {
        "default": "P30D",
        "levels": {"debug": "P3D", "ERROR": "P90D"},
        "services": {
            "audit": {"default": None, "levels": {"DEBUG": "P7D"}},
            "payments": {"default": "P365D"},
            "chatty": {"levels": {"INFO": "PT12H"}},
        },
    }
)


@pytest.mark.parametrize(
    ("service", "level", "expected"),
    [
        ("web", Level.INFO, timedelta(days=30)),  # global default
        ("web", Level.DEBUG, timedelta(days=3)),  # global level override (alias key)
        ("web", Level.ERROR, timedelta(days=90)),
        ("payments", Level.DEBUG, timedelta(days=365)),  # service default beats global level
        ("audit", Level.DEBUG, timedelta(days=7)),  # service + level beats service default
        ("audit", Level.ERROR, None),  # explicit null: keep forever
        ("chatty", Level.INFO, timedelta(hours=12)),
        ("chatty", Level.ERROR, timedelta(days=90)),  # no service default: global rules apply
    ],
)
def test_most_specific_rule_wins(service: str, level: Level, expected: timedelta | None) -> None:
    assert POLICY.retention_for(service, level) == expected


def test_expire_at_counts_from_the_event_timestamp() -> None:
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    assert POLICY.expire_at("web", Level.DEBUG, ts) == ts + timedelta(days=3)
    assert POLICY.expire_at("audit", Level.ERROR, ts) is None


def test_durations_accept_seconds_too() -> None:
    policy = RetentionPolicy.model_validate({"default": 90})
    assert policy.default == timedelta(seconds=90)


@pytest.mark.parametrize(
    "bad",
    [
        {"default": "PT0S"},
        {"levels": {"LOUD": "P1D"}},
        {"services": {"x": {"levels": {"INFO": "-P1D"}}}},
        {"services": {"bad name": {"default": "P1D"}}},
        {"retain": "P1D"},
    ],
)
def test_invalid_policies_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RetentionPolicy.model_validate(bad)


def test_policy_comes_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "LOGRIVER_RETENTION",
        '{"default": "P14D", "services": {"audit": {"default": "P400D"}}}',
    )
    settings = WriterSettings()
    assert settings.retention.retention_for("web", Level.INFO) == timedelta(days=14)
    assert settings.retention.retention_for("audit", Level.INFO) == timedelta(days=400)


def test_default_policy_keeps_thirty_days() -> None:
    assert RetentionPolicy().retention_for("any", Level.CRITICAL) == timedelta(days=30)
