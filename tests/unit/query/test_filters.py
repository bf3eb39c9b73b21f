"""Parameter parsing → MongoDB filter: whitelists, typed values, ranges (no network)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from logriver_common.web.errors import ApiError
from logriver_query.filters import (
    FILTER_PARAMS,
    parse_filter,
    parse_levels,
    reject_unknown,
)
from logriver_query.settings import QuerySettings

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SETTINGS = QuerySettings()


def mongo(**params: str | list[str]) -> dict[str, Any]:
    multi = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
    return parse_filter(multi, SETTINGS, NOW).to_mongo()


def _parse(params: dict[str, list[str]]) -> None:
    reject_unknown(params, FILTER_PARAMS)
    parse_filter(params, SETTINGS, NOW)


def rejected(params: dict[str, list[str]]) -> ApiError:
    with pytest.raises(ApiError) as info:
        _parse(params)
    assert 400 <= info.value.status_code < 500
    return info.value


def test_defaults_to_the_last_hour_half_open() -> None:
    assert mongo() == {"timestamp": {"$gte": NOW - timedelta(hours=1), "$lt": NOW}}


def test_every_filter_maps_to_plain_values() -> None:
    query = mongo(
        service=["b", "a,c"],
        level=">=warn",
        since="15m",
        until="2026-05-01T13:00:00+01:00",
        trace_id="4BF92F3577B34DA6A3CE929D0E0E4736",
        host="web-3",
        env="prod",
        q="time(out)*",
        **{"meta.order_id": "A-1", "meta.attempt": "3"},
    )
    assert query == {
        "timestamp": {"$gte": NOW - timedelta(minutes=15), "$lt": NOW},
        "service": {"$in": ["a", "b", "c"]},
        "level": {"$in": ["WARNING", "ERROR", "CRITICAL"]},
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "host": "web-3",
        "env": "prod",
        "message": {"$regex": r"time\(out\)\*", "$options": "i"},
        "metadata.attempt": {"$in": ["3", 3]},
        "metadata.order_id": {"$in": ["A-1"]},
    }


def test_all_levels_means_no_level_condition() -> None:
    assert "level" not in mongo(level=">=DEBUG")
    assert mongo(level="ERROR")["level"] == "ERROR"
    assert parse_levels(["error", "fatal"]) == ("ERROR", "CRITICAL")


def test_word_queries_keep_every_word_and_match_whole_words() -> None:
    """A word the template dictionary cannot hold (a digit, over 40 characters) is still a
    word query: the service matches it by the time-sliced scan (word_search.py)."""
    long_word = "a" * 41
    flt = parse_filter({"q": [f"Timeout v2 {long_word}"], "match": ["word"]}, SETTINGS, NOW)
    assert flt.words == tuple(sorted(["timeout", "v2", long_word]))
    assert flt.templates is None
    patterns = flt.to_mongo()["message"]["$all"]
    assert [p.pattern for p in patterns] == [
        f"(?<![0-9a-z_]){word}(?![0-9a-z_])" for word in flt.words
    ]
    assert "th" not in flt.to_mongo()
    resolved = dataclasses.replace(flt, templates=(7, 9))
    assert resolved.to_mongo()["th"] == {"$in": [7, 9]}


@pytest.mark.parametrize(
    "params",
    [
        {"$where": ["1"]},
        {"service[$gt]": [""]},
        {"meta.$where": ["1"]},
        {"meta.a.b": ["1"]},
        {"meta.": ["1"]},
        {"service": ['{"$gt": ""}']},
        {"level": ['{"$ne": null}']},
        {"trace_id": ["not-hex"]},
        {"since": ["yesterday"]},
        {"since": ["99999999w"]},
        {"since": ["2026-05-01T12:00:00Z"], "until": ["2026-05-01T11:00:00Z"]},
        {"since": ["0001-01-01T00:00:00Z"]},
        {"q": ["+++"], "match": ["word"]},
        {"q": ["x"], "match": ["regex"]},
        {"q": ["a" * 1000]},
        {"q": ["bad\x00byte"]},
        {"host": ["h", "h2"]},
        {"env": [""]},
    ],
)
def test_hostile_parameters_are_4xx(params: dict[str, list[str]]) -> None:
    rejected(params)


def test_operator_looking_values_stay_literal_strings() -> None:
    query = mongo(host='{"$gt": ""}', **{"meta.user": "$where"})
    assert query["host"] == '{"$gt": ""}'
    assert query["metadata.user"] == {"$in": ["$where"]}


def test_regex_bomb_is_escaped_to_a_literal() -> None:
    assert mongo(q="(a+)+$")["message"]["$regex"] == r"\(a\+\)\+\$"


def test_fingerprint_ignores_order_and_spelling() -> None:
    one = parse_filter({"service": ["a", "b"], "level": ["warn"]}, SETTINGS, NOW)
    two = parse_filter({"service": ["b,a"], "level": ["WARNING"]}, SETTINGS, NOW)
    other = parse_filter({"service": ["a"]}, SETTINGS, NOW)
    assert one.fingerprint() == two.fingerprint() != other.fingerprint()


@pytest.mark.parametrize(
    "params",
    [
        # Valid datetimes whose UTC instant is before year 1 or after 9999.
        {"since": ["0001-01-01T00:00:00+01:00"]},
        {"until": ["0001-01-01T00:30:00+01:00"]},
        {"since": ["9999-12-31T23:00:00Z"], "until": ["9999-12-31T23:59:59-01:00"]},
        # `since` defaults to `until` minus an hour: before year 1.
        {"until": ["0001-01-01T00:00:00Z"]},
        {"since": ["9999999w"]},
        {"since": ["2026-05-01T12:00:00\x00Z"]},
        {"since": ["x" * 5000]},
        {"host": ["a\x00b"]},
        {"host": ["h" * 257]},
        {"meta.a\x00b": ["1"]},
        {"meta.x": ["v" * 257]},
        {"trace_id": ["4bf92f3577b34da6a3ce929d0e0e473\x00"]},
        {"service": ["a\x00b"]},
        {"level": ["ERROR\x00"]},
        {**{f"meta.k{i}": ["1"] for i in range(11)}},
        {"service": [",".join(f"s{i}" for i in range(101))]},
    ],
)
def test_extreme_and_malformed_values_are_4xx(params: dict[str, list[str]]) -> None:
    error = rejected(params)
    assert error.status_code == 400


def test_year_one_and_year_9999_windows_are_fine() -> None:
    low = parse_filter(
        {"since": ["0001-01-01T00:00:00Z"], "until": ["0001-01-02T00:00:00+01:00"]}, SETTINGS, NOW
    )
    assert low.window.since == datetime(1, 1, 1, tzinfo=UTC)
    high = parse_filter({"until": ["9999-12-31T23:59:59.999999Z"]}, SETTINGS, NOW)
    assert high.window.seconds == 3600


def test_a_metadata_value_with_nul_or_operators_is_a_literal() -> None:
    query = mongo(**{"meta.k": ["a\x00b", '{"$gt": ""}', "99999999999999999999"]})
    # Beyond int64, so only the string: the driver could not encode the integer.
    assert query["metadata.k"] == {"$in": ["99999999999999999999", "a\x00b", '{"$gt": ""}']}
