"""The canonical decoder never raises, and whatever it accepts MongoDB can store.

Property-based (hypothesis) over arbitrary bytes and arbitrary JSON values,
plus the targeted classes a hostile producer reaches for.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logriver_common.decoding import Rejection, RejectReason, decode_event
from logriver_common.documents import event_to_document
from logriver_common.event_rule import Event, encode
from tests.unit.event_strategies import json_values

MAX_BSON = 16 * 1024 * 1024
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_storable(outcome: Event | Rejection) -> None:
    """The contract: a Rejection, or an event every consumer can use and MongoDB can store."""
    if isinstance(outcome, Rejection):
        assert isinstance(outcome.reason, RejectReason)
        assert outcome.reason is not RejectReason.DECODER_ERROR, outcome.detail
        assert outcome.detail
        return
    document = event_to_document(outcome, outcome.when + timedelta(days=30))
    assert len(bson.encode(document)) <= MAX_BSON
    assert b"\n" not in encode(outcome)
    # Re-decoding what a consumer re-encodes gives the same event (the stream's payload).
    again = decode_event(encode(outcome))
    assert isinstance(again, Event)
    assert again == outcome


timestamps = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 1),  # noqa: DTZ001 - naive on purpose, offsets added below
        max_value=datetime(9999, 12, 31, 23, 59, 59),  # noqa: DTZ001
    ).map(lambda d: d.isoformat()),
    st.builds(
        lambda d, minutes: (
            d.isoformat() + f"{'+' if minutes >= 0 else '-'}"
            f"{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        ),
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),  # noqa: DTZ001
        st.integers(min_value=-23 * 60, max_value=23 * 60),
    ),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),
    json_values,
)


@PROPERTY
@given(st.binary(max_size=2048))
def test_any_bytes_decode_or_are_rejected(value: bytes) -> None:
    assert_storable(decode_event(value))


@PROPERTY
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=8))
def test_any_json_object_decodes_or_is_rejected(value: dict[str, Any]) -> None:
    assert_storable(decode_event(json.dumps(value).encode()))


@PROPERTY
@given(
    service=st.text(max_size=70) | json_values,
    message=st.text(max_size=200) | json_values,
    level=st.sampled_from(["warn", "ERROR", "fatal", "loud", ""]) | json_values,
    timestamp=timestamps,
    metadata=json_values,
    extra=st.dictionaries(
        st.sampled_from(["host", "env", "trace_id", "id", "context"]), json_values
    ),
)
def test_events_with_arbitrary_field_values_never_break_the_decoder(
    service: object,
    message: object,
    level: object,
    timestamp: object,
    metadata: object,
    extra: dict[str, object],
) -> None:
    value = {
        "service": service,
        "message": message,
        "level": level,
        "timestamp": timestamp,
        "metadata": metadata,
        **extra,
    }
    # The standard library writes integers of any size, as a hostile producer would.
    assert_storable(decode_event(json.dumps(value).encode()))


def event(**fields: object) -> bytes:
    return orjson.dumps({"service": "api", "message": "hello", **fields})


DEEP_OBJECT = b'{"a": ' * 10_000 + b"1" + b"}" * 10_000


def raw_event(tail: bytes) -> bytes:
    return b'{"service": "api", "message": "hello", ' + tail + b"}"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(event(metadata={"n": 2**63}), id="int64-max+1"),
        pytest.param(event(metadata={"n": 2**64 - 1}), id="uint64-max"),
        pytest.param(raw_event(b'"metadata": {"n": -9223372036854775809}'), id="int64-min-1"),
        pytest.param(raw_event(b'"metadata": {"n": 123456789012345678901234567890}'), id="bigint"),
        pytest.param(raw_event(b'"metadata": {"n": NaN}'), id="nan"),
        pytest.param(raw_event(b'"metadata": {"n": Infinity}'), id="infinity"),
        pytest.param(raw_event(b'"metadata": {"n": -Infinity}'), id="-infinity"),
        pytest.param(raw_event(b'"metadata": {"n": 1e400}'), id="1e400"),
        pytest.param(event(timestamp="0001-01-01T00:00:00+01:00"), id="year1+01"),
        pytest.param(event(timestamp="0001-01-01T00:00:00Z"), id="year1"),
        pytest.param(event(timestamp="9999-12-31T23:59:59-01:00"), id="year9999-01"),
        pytest.param(event(timestamp="9999-12-31T23:59:59Z"), id="year9999"),
        pytest.param(event(timestamp="1969-12-31T23:59:59.999Z"), id="before-1970"),
        pytest.param(event(timestamp=-1), id="negative-epoch"),
        pytest.param(event(received_at="0001-01-01T00:00:00+01:00"), id="received-year1+01"),
        pytest.param(
            raw_event(b'"metadata": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_000), id="deep-10000"
        ),
        pytest.param(
            raw_event(b'"metadata": ' + b"[" * 10_000 + b"]" * 10_000), id="deep-list-10000"
        ),
        pytest.param(event(metadata={"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}), id="depth-6"),
        pytest.param(event(message="x" * (64 * 1024)), id="huge-message"),
        pytest.param(event(metadata={"k": "v" * (20 * 1024)}), id="huge-metadata"),
        pytest.param(b'{"service": "api", "message": "\xed\xa0\x80"}', id="utf8-surrogate"),
        pytest.param(b'{"service": "api", "message": "\xff"}', id="invalid-utf8"),
        pytest.param(raw_event(b'"host": "\\ud800"'), id="lone-surrogate-escape"),
        pytest.param(event(message="a\x00b"), id="nul-message"),
        pytest.param(event(metadata={"$where": "1"}), id="dollar-key"),
        pytest.param(event(metadata={"a.b": 1}), id="dotted-key"),
        pytest.param(event(metadata={"a\x00b": 1}), id="nul-key"),
        pytest.param(event(metadata={"ok": [{"$gt": ""}]}), id="dollar-key-in-list"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"a string"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"", id="empty"),
        pytest.param(None, id="tombstone"),
        pytest.param(b"x" * (17 * 1024 * 1024), id="over-16MiB"),
        pytest.param(event(metadata={f"k{i}": i for i in range(500)}), id="too-many-keys"),
        pytest.param(event(trace_id="0" * 32), id="zero-trace-id"),
        pytest.param(event(colour="red"), id="unknown-field"),
    ],
)
def test_hostile_records_are_rejected_with_a_reason(value: bytes | None) -> None:
    outcome = decode_event(value)
    assert isinstance(outcome, Rejection), outcome
    assert outcome.reason is not RejectReason.DECODER_ERROR, outcome.detail
    assert outcome.detail


def test_duplicate_keys_take_the_last_value_like_every_json_parser_here() -> None:
    outcome = decode_event(b'{"service": "a", "message": "first", "message": "second"}')
    assert isinstance(outcome, Event)
    assert outcome.message == "second"


def test_values_at_the_edges_that_storage_holds_are_accepted() -> None:
    outcome = decode_event(
        event(
            timestamp="1970-01-01T00:00:00Z",
            metadata={"max": 2**63 - 1, "min": -(2**63), "f": 1.7976931348623157e308},
        )
    )
    assert isinstance(outcome, Event)
    assert outcome.when == datetime(1970, 1, 1, tzinfo=UTC)
    assert outcome.metadata is not None
    assert math.isfinite(outcome.metadata["f"])
    assert_storable(outcome)


@PROPERTY
@given(
    message=st.text(max_size=300),
    metadata=st.dictionaries(st.from_regex(r"\A[a-z_]{1,8}\Z"), json_values, max_size=6),
    offset_minutes=st.integers(min_value=-23 * 60, max_value=23 * 60),
)
def test_accepted_events_with_arbitrary_metadata_are_storable(
    message: str, metadata: dict[str, Any], offset_minutes: int
) -> None:
    sign = "+" if offset_minutes >= 0 else "-"
    offset = f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    stamp = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S") + offset
    value = {"service": "api", "message": message, "timestamp": stamp, "metadata": metadata}
    outcome = decode_event(json.dumps(value).encode())
    assert_storable(outcome)
    if isinstance(outcome, Event):
        assert outcome.when.tzinfo is UTC
