from __future__ import annotations

import resource
import time

import pytest

from logriver_stream.filters import (
    Filter,
    FilterError,
    FilterSpec,
    RegexCompiler,
    spec_from_json,
    spec_from_query,
)
from tests.unit.stream.helpers import COMPILER, LIMITS, make_filter, record


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
        COMPILER.compile("a" * 257)
    with pytest.raises(FilterError, match="invalid pattern"):
        make_filter(regex="(unclosed")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        # The issue's 27 characters of nested counted repeats: RE2's parser refuses it.
        ("((a{1,100}){1,100}){1,100}", "invalid repetition size"),
        (r"\pL{1000}", "too costly"),  # hits the 1 MiB compile memory bound
        (r"(\pL|\pN|\pP){1000}", "too costly"),
        (".{0,1000}x", "too costly"),  # compiles, but to 9005 instructions
        (r"\w{1000}", "too costly"),
        ("a{1001}", "invalid repetition size"),
        ("(?=lookahead)", "invalid pattern"),  # RE2 has no look-around ...
        (r"(a)\1", "invalid pattern"),  # ... and no backreferences
        ("(" * 100 + ")" * 100 + "(", "invalid pattern"),
        ("\ud800", "invalid pattern"),  # a lone surrogate cannot be UTF-8
        ("[z-a]", "invalid pattern"),
    ],
)
def test_costly_or_invalid_patterns_are_refused_quickly(pattern: str, why: str) -> None:
    compiler = RegexCompiler(LIMITS)
    rss_before = _peak_rss_mib()
    started = time.perf_counter()
    with pytest.raises(FilterError) as info:
        compiler.compile(pattern)
    elapsed = time.perf_counter() - started
    assert info.value.detail[0]["param"] == "regex"
    assert why in info.value.detail[0]["msg"]
    # Generous bounds for a shared machine: measured at about 6 ms and no growth.
    assert elapsed < 0.5, elapsed
    assert _peak_rss_mib() - rss_before < 64
    # A refusal is cached: asking again costs a lookup, with the same answer.
    assert compiler.cached(pattern)
    with pytest.raises(FilterError):
        compiler.compile(pattern)


def test_backtracking_patterns_are_linear_under_re2() -> None:
    bomb = make_filter(regex=r"(a|aa)+$")
    started = time.perf_counter()
    assert not bomb.matches(record(0, 1, message="a" * 30_000 + "!"))
    assert time.perf_counter() - started < 0.5
    assert bomb.matches(record(0, 2, message="aaaa"))


def test_regex_matches_unicode_and_odd_messages() -> None:
    # RE2 reads an out-of-range count as literal text: harmless, and cheap.
    huge = make_filter(regex="a{99999999999999999999}")
    assert huge.matches(record(0, 0, message="a{99999999999999999999}"))
    assert make_filter(regex="é+$").matches(record(0, 1, message="café"))
    assert make_filter(regex=r"^\d{3}-\w+").matches(record(0, 2, message="404-not found"))
    assert not make_filter(regex="x").matches(record(0, 3, message=""))
    assert make_filter(regex="(?i)ERROR").matches(record(0, 4, message="an error"))
    # Events never hold NUL (the decoder refuses it), so a NUL pattern compiles and never matches.
    assert not make_filter(regex="a\x00b").matches(record(0, 5, message="za bz"))
    assert make_filter(regex="a\tb").matches(record(0, 6, message="za\tbz"))


def test_compiler_cache_is_bounded_and_reuses_patterns() -> None:
    compiler = RegexCompiler(LIMITS, cache_size=2)
    first = compiler.compile("one")
    assert compiler.compile("one") is first
    compiler.compile("two")
    compiler.compile("three")  # evicts "one", the least recently used
    assert not compiler.cached("one")
    assert compiler.cached("two")
    assert compiler.cached("three")


def test_filter_and_compiled_regex_must_agree() -> None:
    with pytest.raises(ValueError, match="compiled regex"):
        Filter(FilterSpec(regex="a"))
    with pytest.raises(ValueError, match="compiled regex"):
        Filter(FilterSpec(), COMPILER.compile("a"))
