"""Channel headers that cannot be sent, and what the API shows of a channel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from logriver_alerter.channel_safety import (
    MASK,
    header_problem,
    header_problems,
    mask_url,
    restore,
)
from logriver_alerter.rules import Channel, ChannelSpec, RuleSpec, SilenceSpec

REFUSED_HEADERS: list[tuple[str, str]] = [
    ("Host", "internal.example"),
    ("host", "x"),
    ("Content-Length", "5"),
    ("content-length", "0"),
    ("Transfer-Encoding", "chunked"),
    ("Connection", "close"),
    ("Keep-Alive", "timeout=5"),
    ("Upgrade", "websocket"),
    ("TE", "trailers"),
    ("Trailer", "X-A"),
    ("Expect", "100-continue"),
    ("Proxy-Authorization", "Basic eA=="),
    ("Proxy-Connection", "keep-alive"),
    ("Content-Type", "text/plain"),
    ("X-Logriver-Signature", "sha256=00"),
    ("X-Logriver-Notification-Id", "1"),
    ("X-A", "a\r\nX-Injected: 1"),
    ("X-A", "a\nb"),
    ("X-A", "a\rb"),
    ("X-A", "a\x00b"),
    ("X-A", "a\x7fb"),
    ("X-A", "caf\u00e9"),
    ("X-A", " leading"),
    ("X-A", "trailing "),
    ("X-A", "x" * 4097),
    ("X A", "v"),
    ("X:A", "v"),
    ("", "v"),
    ("X" * 65, "v"),
]


@pytest.mark.parametrize(("name", "value"), REFUSED_HEADERS)
def test_framing_hop_by_hop_reserved_and_unsafe_headers_are_refused(name: str, value: str) -> None:
    assert header_problem(name, value) is not None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Authorization", "Bearer abc.def-ghi"),
        ("X-Api-Key", "k"),
        ("X-Empty", ""),
        ("X-Spaces", "a b\tc"),
        ("X-Token", "x" * 4096),
        ("X_Under.score~", "!#$%&'*+-.^_`|~"),
    ],
)
def test_ordinary_headers_are_accepted(name: str, value: str) -> None:
    assert header_problem(name, value) is None


def test_header_problems_are_field_errors_and_catch_case_duplicates() -> None:
    errors = header_problems(
        {"X-A": "1", "x-a": "2", "Content-Length": "3"}, ["body", "webhook", "headers"]
    )
    assert [e["loc"] for e in errors] == [
        ["body", "webhook", "headers", "x-a"],
        ["body", "webhook", "headers", "Content-Length"],
    ]
    assert {e["type"] for e in errors} == {"forbidden_header"}


@pytest.mark.parametrize(
    ("url", "hide_path", "shown"),
    [
        (
            "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
            True,
            "https://hooks.slack.com/***",
        ),
        (
            "https://oapi.dingtalk.com/robot/send?access_token=abc123",
            False,
            "https://oapi.dingtalk.com/robot/send?access_token=***",
        ),
        (
            "https://h.example/hook?a=1&token=s3cr3t&flag",
            False,
            "https://h.example/hook?a=***&token=***&***",
        ),
        ("https://user:pw@h.example/x", False, "https://***@h.example/x"),
        ("https://h.example/x#frag", False, "https://h.example/x#***"),
        ("https://h.example/", True, "https://h.example/"),
    ],
)
def test_urls_are_masked(url: str, hide_path: bool, shown: str) -> None:
    assert mask_url(url, hide_path=hide_path) == shown


SLACK = {"type": "slack", "url": "https://hooks.slack.com/services/T0/B0/SECRETPATH"}
DINGTALK = {
    "type": "dingtalk",
    "url": "https://oapi.dingtalk.com/robot/send?access_token=tok123",
    "secret": "SECabcdef",
}
WEBHOOK = {
    "type": "webhook",
    "url": "https://h.example/hook?key=k1",
    "secret": "0123456789abcdef-secret",
    "headers": {"Authorization": "Bearer very-secret"},
}


@pytest.mark.parametrize("config", [SLACK, DINGTALK, WEBHOOK])
def test_public_view_shows_no_secret(config: dict[str, Any]) -> None:
    public = Channel.model_validate({"name": "c", "config": config}).public()
    text = str(public)
    for secret in ("SECRETPATH", "tok123", "SECabcdef", "k1", "0123456789", "very-secret"):
        assert secret not in text
    assert public["name"] == "c"
    assert public["type"] == config["type"]
    if "headers" in config:
        assert public["headers"] == {"Authorization": MASK}


@pytest.mark.parametrize("config", [SLACK, DINGTALK, WEBHOOK])
def test_sending_back_what_get_shows_keeps_every_secret(config: dict[str, Any]) -> None:
    stored = ChannelSpec.model_validate(config).root.model_dump(mode="json")
    shown = Channel.model_validate({"name": "c", "config": config}).public()
    shown.pop("name")
    sent = ChannelSpec.model_validate(shown).root.model_dump(mode="json")
    merged, errors = restore(sent, stored)
    assert errors == []
    assert merged == stored


def test_masks_without_a_stored_value_are_refused() -> None:
    shown = Channel.model_validate({"name": "c", "config": WEBHOOK}).public()
    shown.pop("name")
    sent = ChannelSpec.model_validate(shown).root.model_dump(mode="json")
    _, errors = restore(sent, None)
    assert sorted(e["loc"][-1] for e in errors) == ["Authorization", "secret", "url"]
    assert {e["type"] for e in errors} == {"masked_value"}
    # Another type's secrets are not reused, nor a URL whose visible part changed.
    _, errors = restore(sent, ChannelSpec.model_validate(DINGTALK).root.model_dump(mode="json"))
    assert len(errors) == 3
    moved = {**sent, "url": "https://other.example/hook?key=***"}
    stored = ChannelSpec.model_validate(WEBHOOK).root.model_dump(mode="json")
    _, errors = restore(moved, stored)
    assert [e["loc"][-1] for e in errors] == ["url"]


def test_new_values_replace_stored_ones() -> None:
    stored = ChannelSpec.model_validate(WEBHOOK).root.model_dump(mode="json")
    sent = {**stored, "secret": "another-secret-0123", "headers": {"Authorization": MASK, "X": "1"}}
    merged, errors = restore(sent, stored)
    assert errors == []
    assert merged["secret"] == "another-secret-0123"
    assert merged["headers"] == {"Authorization": "Bearer very-secret", "X": "1"}


BAD_TEXT = ["a\x00b", "\ud800", "ok\udfff"]


@pytest.mark.parametrize("text", BAD_TEXT)
def test_text_postgresql_cannot_store_is_refused(text: str) -> None:
    rule = {
        "name": "r",
        "services": ["a"],
        "condition": {"type": "count", "threshold": 5},
        "window_seconds": 60,
        "min_events": 1,
    }
    with pytest.raises(ValidationError):
        RuleSpec.model_validate({**rule, "labels": {"team": text}})
    ends = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(ValidationError):
        SilenceSpec.model_validate({"service": "a", "ends_at": ends, "comment": text})
    with pytest.raises(ValidationError):
        ChannelSpec.model_validate({**DINGTALK, "secret": text})
    with pytest.raises(ValidationError):
        ChannelSpec.model_validate({**WEBHOOK, "secret": text * 8})


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-1))),
    ],
)
def test_times_that_do_not_exist_in_utc_are_refused(moment: datetime) -> None:
    with pytest.raises(ValidationError, match="out of range"):
        SilenceSpec.model_validate({"service": "a", "ends_at": moment})
    with pytest.raises(ValidationError, match="out of range"):
        SilenceSpec.model_validate(
            {"service": "a", "starts_at": moment, "ends_at": datetime.now(UTC)}
        )


def test_silence_rule_ids_are_ids() -> None:
    ends = datetime.now(UTC) + timedelta(hours=1)
    for bad in ["", "a b", "x" * 129, "a\x00", "../x"]:
        with pytest.raises(ValidationError):
            SilenceSpec.model_validate({"rule_id": bad, "ends_at": ends})
    assert SilenceSpec.model_validate({"rule_id": "0123abcd", "ends_at": ends}).rule_id
