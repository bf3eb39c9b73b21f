"""Default redaction rules: secrets masked, ordinary text left alone, counts kept."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logriver_common.event import LogEvent
from logriver_common.event_rule import Event
from logriver_ingest.redaction import MASK, Redactor, luhn_valid
from logriver_ingest.settings import IngestSettings, RedactionRule

SETTINGS = IngestSettings()


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(SETTINGS.redaction_rules, SETTINGS.masked_metadata_keys)


@pytest.mark.parametrize(
    ("text", "secret", "kept", "rule"),
    [
        ("login failed password=hunter2 for bob", "hunter2", "password=", "password"),
        ('config {"api_key": "abc123def"} loaded', "abc123def", "api_key", "password"),
        ("PWD: s3cr3t!", "s3cr3t!", "PWD", "password"),
        ("got Authorization: Bearer eyJhbGciOi.J9.x-y_z", "eyJhbGciOi", "Bearer", "bearer_token"),
        ("using lr_ab12cd34_" + "Q" * 43, "Q" * 43, "using", "api_key"),
        ("stripe sk_live_51HxYzAbCdEfGh", "sk_live_51HxYzAbCdEfGh", "stripe", "api_key"),
        ("aws AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE", "used", "api_key"),
        ("card 4111 1111 1111 1111 declined", "4111 1111 1111 1111", "declined", "card_number"),
        ("card 5500-0000-0000-0004 ok", "5500-0000-0000-0004", "ok", "card_number"),
        ("mail to jane.doe+x@example.co.uk now", "jane.doe+x@example.co.uk", "now", "email"),
    ],
)
def test_default_rules_mask_secrets(
    redactor: Redactor, text: str, secret: str, kept: str, rule: str
) -> None:
    counts: Counter[str] = Counter()
    out = redactor.redact_text(text, counts)
    assert secret not in out
    assert MASK in out
    assert kept in out
    assert counts[rule] >= 1


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890123 shipped",  # 13 digits, fails Luhn: an order number, not a card
        "took 4111 ms; retried 3 times",
        "passed all checks",  # 'pass' without a value
        "user @admin mentioned",
        "token bucket refilled",
    ],
)
def test_ordinary_text_is_left_alone(redactor: Redactor, text: str) -> None:
    counts: Counter[str] = Counter()
    assert redactor.redact_text(text, counts) == text
    assert not counts


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")


def test_metadata_keys_masked_at_any_depth(redactor: Redactor) -> None:
    event = LogEvent(
        service="a",
        message="hello",
        metadata={
            "user": "bob",
            "db_password": "p",
            "request": {"headers": {"Authorization": "Basic abc", "X-Client-Secret": {"a": 1}}},
            "items": [{"access_token": "t"}, "mail me: a@b.io"],
            "count": 3,
        },
    )
    counts: Counter[str] = Counter()
    redactor.redact_event(event, counts)
    assert event.metadata == {
        "user": "bob",
        "db_password": MASK,
        "request": {"headers": {"Authorization": MASK, "X-Client-Secret": MASK}},
        "items": [{"access_token": MASK}, f"mail me: {MASK}"],
        "count": 3,
    }
    assert counts == {"metadata_key": 4, "email": 1}


def test_custom_rule_with_hint_and_backreference() -> None:
    rule = RedactionRule(
        name="ssn", pattern=r"(ssn[:= ]+)\d{3}-\d{2}-\d{4}", replacement=r"\1***", hints=["ssn"]
    )
    redactor = Redactor([rule], [])
    counts: Counter[str] = Counter()
    # Hints are case-insensitive, the pattern is not: this rule only masks lowercase "ssn".
    assert redactor.redact_text("SSN: 123-45-6789 x", counts) == "SSN: 123-45-6789 x"
    assert redactor.redact_text("ssn: 123-45-6789 x", counts) == "ssn: *** x"
    assert counts == {"ssn": 1}


# --- the event-level gate (redact_event) must mask exactly what the string-by-string path masks


def _exact(redactor: Redactor, message: str, metadata: dict[str, Any] | None) -> tuple[Any, ...]:
    counts: Counter[str] = Counter()
    text = redactor.redact_text(message, counts)
    meta = redactor.redact_value(metadata, counts) if metadata else metadata
    return text, meta, counts


def _gated(redactor: Redactor, message: str, metadata: dict[str, Any] | None) -> tuple[Any, ...]:
    event = Event(service="a", message=message, metadata=copy.deepcopy(metadata))
    counts: Counter[str] = Counter()
    redactor.redact_event(event, counts)
    return event.message, event.metadata, counts


_PIECES = st.sampled_from(
    [
        "Bearer abcdefgh12345",
        "BEARER  xyz.abc-123_456",
        "password=hunter2",
        "PaSsWoRd: x",
        "token=t0k3n",
        "api-key=abc",
        "lr_ab12cd34_QQQQQQQQQQQQQQQQQQ",
        "sk_live_1234567890ab",
        "AKIAIOSFODNN7EXAMPLE",
        "4111 1111 1111 1111",
        "4111111111111112",
        "1234567890123",
        "jane@example.com",
        "@",
        "\u212aey=1",  # KELVIN SIGN lowers to k: 'key' only after lowering
        "\u0130",  # lowers to two characters
        "\u03a3\u03a3",  # final sigma lowers by context
        "\x00",
        "GET /api/v1/orders/42 took 7 ms",
        "passed",
        " ",
        "-",
        "7",
    ]
)
_TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=8)), max_size=6).map("".join)
_KEYS = st.sampled_from(["route", "user", "db_password", "X-Api-Key", "token", "n", "Cookie"])
_VALUES = st.recursive(
    st.one_of(_TEXT, st.integers(), st.none(), st.booleans()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_KEYS | st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(
    message=_TEXT,
    metadata=st.none() | st.dictionaries(_KEYS | st.text(max_size=5), _VALUES, max_size=4),
)
def test_event_gate_masks_exactly_what_each_string_would(
    message: str, metadata: dict[str, Any] | None
) -> None:
    redactor = Redactor(SETTINGS.redaction_rules, SETTINGS.masked_metadata_keys)
    assert _gated(redactor, message, metadata) == _exact(redactor, message, metadata)


def test_event_gate_passes_plain_events_untouched(redactor: Redactor) -> None:
    metadata = {"route": "/api/v1/orders/{id}", "status": 200, "attempt": 1, "tags": ["a", "b"]}
    event = Event(service="a", message="GET /api/v1/orders/42 took 7 ms", metadata=metadata)
    counts: Counter[str] = Counter()
    redactor.redact_event(event, counts)
    assert event.metadata is metadata  # nothing to mask: not even copied
    assert not counts


def test_event_gate_with_a_rule_that_has_no_hint() -> None:
    rule = RedactionRule(name="ssn", pattern=r"\b\d{3}-\d{2}-\d{4}\b")
    redactor = Redactor([rule], [])
    event = Event(service="a", message="ssn 123-45-6789", metadata={"x": ["id 987-65-4321"]})
    counts: Counter[str] = Counter()
    redactor.redact_event(event, counts)
    assert event.message == f"ssn {MASK}"
    assert event.metadata == {"x": [f"id {MASK}"]}
    assert counts["ssn"] == 2
