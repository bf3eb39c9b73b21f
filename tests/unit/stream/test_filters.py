from __future__ import annotations

import pytest

from logriver_stream.filters import (
    Filter,
    FilterError,
    FilterSpec,
    RegexLimits,
    RegexTimeout,
    spec_from_json,
    spec_from_query,
)
from tests.unit.stream.helpers import LIMITS, make_filter, record


def test_query_string_parses_filters_and_control() -> None:
    spec, control = spec_from_query(
        [
            ("service", "api"),
            ("service", "web"),
            ("level", "warn"),
            ("q", "Timeout"),
            ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("meta.order.id", "A-1"),
            ("token", "t"),
            ("since", "15m"),
        ]
    )
    assert spec.service == ["api", "web"]
    assert spec.level == "WARNING"
    assert spec.meta == {"order.id": "A-1"}
    assert control == {"token": "t", "since": "15m"}


@pytest.mark.parametrize(
    ("items", "param"),
    [
        ([("colour", "red")], "colour"),
        ([("level", "INFO"), ("level", "ERROR")], "level"),
        ([("level", "loud")], "level"),
        ([("service", "no spaces")], "service"),
        ([("trace_id", "123")], "trace_id"),
        ([("meta.$where", "1")], "meta"),
        ([("meta.a..b", "1")], "meta"),
        ([("q", "x" * 300)], "q"),
        ([("service", f"s{i}") for i in range(51)], "service"),
    ],
)
def test_bad_filters_name_the_parameter(items: list[tuple[str, str]], param: str) -> None:
    with pytest.raises(FilterError) as info:
        spec_from_query(items)
    assert any(d["param"].startswith(param) for d in info.value.detail), info.value.detail


def test_json_filters_reject_unknown_fields() -> None:
    with pytest.raises(FilterError):
        spec_from_json({"services": ["api"]})


def test_matching() -> None:
    base = record(0, 1, service="api", level="ERROR", message="Payment Timeout after 3s")
    assert make_filter().matches(base)
    assert make_filter(service=["api", "web"]).matches(base)
    assert not make_filter(service=["web"]).matches(base)
    assert make_filter(level="WARNING").matches(base)
    assert not make_filter(level="CRITICAL").matches(base)
    assert make_filter(q="payment timeout").matches(base)  # case-insensitive
    assert not make_filter(q="refund").matches(base)
    assert make_filter(regex=r"after \d+s$").matches(base)
    assert not make_filter(regex=r"^after").matches(base)


def test_trace_and_metadata_equality() -> None:
    event = record(
        0,
        1,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        metadata={"order": {"id": "A-1"}, "attempt": 3, "ok": True, "none": None},
    )
    assert make_filter(trace_id="4BF92F3577B34DA6A3CE929D0E0E4736").matches(event)
    assert not make_filter(trace_id="0" * 31 + "1").matches(event)
    assert make_filter(meta={"order.id": "A-1", "attempt": "3", "ok": "true"}).matches(event)
    assert not make_filter(meta={"attempt": "4"}).matches(event)
    assert not make_filter(meta={"order.id.deeper": "A-1"}).matches(event)
    assert not make_filter(meta={"none": "null"}).matches(event)
    assert not make_filter(meta={"missing": "x"}).matches(record(0, 2))


def test_regex_bounds() -> None:
    with pytest.raises(FilterError, match="longer than 256"):
        Filter(FilterSpec(regex="a" * 257), LIMITS)
    with pytest.raises(FilterError, match="invalid pattern"):
        make_filter(regex="(unclosed")


def test_catastrophic_regex_times_out_instead_of_hanging() -> None:
    bomb = Filter(FilterSpec(regex=r"(a|aa)+$"), RegexLimits(256, timeout_s=0.01))
    with pytest.raises(RegexTimeout, match="longer than 10 ms"):
        bomb.matches(record(0, 1, message="a" * 5000 + "!"))
