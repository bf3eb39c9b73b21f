"""``logriver ship``'s event time: read from the line, with receive time only as the fallback.

``now`` is fixed in these tests, so year inference and the future bound are exact.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logriver_client import cli
from logriver_client.shipper.parse import record_to_event
from logriver_client.shipper.timestamps import (
    TimeParser,
    check_format,
    parse_timezone,
)
from logriver_common.event import LogEvent

NOW = datetime(2026, 3, 15, 12, 0, 0, tzinfo=UTC)


def text_time(line: str, **options: object) -> datetime | None:
    return TimeParser(**options).from_text(line, NOW)  # type: ignore[arg-type]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc,arg-type]


# -- plain lines: leading timestamps ----------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("2026-03-01T10:20:30Z INFO up", utc(2026, 3, 1, 10, 20, 30)),
        ("2026-03-01T10:20:30.123456789Z x", utc(2026, 3, 1, 10, 20, 30, 123456)),
        ("2026-03-01T10:20:30+02:00 x", utc(2026, 3, 1, 8, 20, 30)),
        ("2026-03-01T10:20:30-0530 x", utc(2026, 3, 1, 15, 50, 30)),
        ("2026-03-01 10:20:30,250 ERROR boom", utc(2026, 3, 1, 10, 20, 30, 250000)),
        ("2026-03-01 10:20:30.5 INFO", utc(2026, 3, 1, 10, 20, 30, 500000)),
        ("2026-03-01 10:20:30 UTC started", utc(2026, 3, 1, 10, 20, 30)),
        ("2026-03-01 10:20 INFO minutes only", utc(2026, 3, 1, 10, 20)),
        ("[2026-03-01 10:20:30,001] INFO kafka style", utc(2026, 3, 1, 10, 20, 30, 1000)),
        ("2026-03-01T10:20:30", utc(2026, 3, 1, 10, 20, 30)),
        ("Mar  1 10:20:30 host sshd[1]: accepted", utc(2026, 3, 1, 10, 20, 30)),
        ("Feb 28 23:59:59 host cron: ran", utc(2026, 2, 28, 23, 59, 59)),
        ("1772360430 INFO epoch seconds", utc(2026, 3, 1, 10, 20, 30)),
        ("1772360430.25 INFO", utc(2026, 3, 1, 10, 20, 30, 250000)),
        ("1772360430123 INFO epoch millis", utc(2026, 3, 1, 10, 20, 30, 123000)),
    ],
)
def test_auto_reads_common_leading_timestamps(line: str, expected: datetime) -> None:
    assert text_time(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "INFO no time here",
        "",
        "200 OK",  # a short number is not an epoch
        "12345678901 too many digits for seconds, too few for millis",
        "1772360430x glued to a word",
        "2026-03-01X10:20:30 not a separator",
        "  ",
        "{not json",
    ],
)
def test_lines_without_a_timestamp_fall_back_and_are_counted_missing(line: str) -> None:
    parser = TimeParser()
    assert parser.from_text(line, NOW) is None
    assert parser.counts == {"parsed": 0, "missing": 1, "invalid": 0}


@pytest.mark.parametrize(
    "line",
    [
        "0000-01-01T00:00:00Z year zero",
        "9999-12-31T23:59:59Z far future",
        "9999-12-31T23:59:59-23:59 past the end of datetime",
        "0001-01-01T00:00:00+01:00 before the start of datetime",
        "1969-12-31T23:59:59Z before 1970",
        "2026-13-01 10:00:00 month 13",
        "2026-02-30 10:00:00 no such day",
        "2026-03-01 25:00:00 25 o'clock",
        "2026-03-01 10:00:60 leap second",
        "2026-03-01T10:00:00+25:00 offset out of range",
        "2026-03-15T12:02:00Z two minutes in the future",
        "Feb 30 10:00:00 no such day in any year",
    ],
)
def test_absurd_stamps_fall_back_and_are_counted_invalid(line: str) -> None:
    parser = TimeParser()
    assert parser.from_text(line, NOW) is None
    assert parser.counts == {"parsed": 0, "missing": 0, "invalid": 1}


def test_a_stamp_just_inside_the_future_tolerance_is_kept() -> None:
    assert text_time("2026-03-15T12:00:30Z clock a little ahead") == utc(2026, 3, 15, 12, 0, 30)


def test_naive_stamps_use_the_timezone_option() -> None:
    line = "2026-03-01 10:00:00 INFO"
    assert text_time(line, tz=parse_timezone("UTC")) == utc(2026, 3, 1, 10)
    assert text_time(line, tz=parse_timezone("+02:00")) == utc(2026, 3, 1, 8)
    assert text_time(line, tz=parse_timezone("-0330")) == utc(2026, 3, 1, 13, 30)
    berlin = parse_timezone("Europe/Berlin")
    assert text_time(line, tz=berlin) == utc(2026, 3, 1, 9)  # CET
    assert text_time("2026-03-10 10:00:00", tz=parse_timezone("America/New_York")) == utc(
        2026, 3, 10, 14
    )  # EDT: DST started on March 8
    # An explicit offset in the line wins over the option.
    assert text_time("2026-03-01T10:00:00Z", tz=berlin) == utc(2026, 3, 1, 10)


@pytest.fixture
def local_tz_tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_local_timezone_is_the_hosts(local_tz_tokyo: None) -> None:
    assert parse_timezone("local") is None
    assert text_time("2026-03-01 10:00:00 INFO", tz=None) == utc(2026, 3, 1, 1)
    # Syslog year inference happens in local time as well.
    assert text_time("Mar 15 20:30:00 host x", tz=None) == utc(2026, 3, 15, 11, 30)


def test_syslog_without_a_year_takes_the_most_recent_year_not_in_the_future() -> None:
    january = datetime(2027, 1, 2, 0, 30, tzinfo=UTC)
    parser = TimeParser()
    # A December line read in January is from last year.
    assert parser.from_text("Dec 31 23:59:58 host app: bye", january) == utc(
        2026, 12, 31, 23, 59, 58
    )
    assert parser.from_text("Jan  2 00:10:00 host app: hi", january) == utc(2027, 1, 2, 0, 10)
    # Feb 29 is from the last leap year.
    assert parser.from_text("Feb 29 08:00:00 host x", NOW) == utc(2024, 2, 29, 8)
    assert parser.counts["parsed"] == 3


def test_named_formats_only_accept_their_own_stamps() -> None:
    assert text_time("2026-03-01T10:00:00Z x", text_format="iso8601") == utc(2026, 3, 1, 10)
    assert text_time("2026-03-01T10:00:00Z x", text_format="rfc3339") == utc(2026, 3, 1, 10)
    assert text_time("Mar  1 10:00:00 x", text_format="iso8601") is None
    assert text_time("Mar  1 10:00:00 x", text_format="syslog") == utc(2026, 3, 1, 10)
    assert text_time("2026-03-01T10:00:00Z x", text_format="syslog") is None
    # Explicit epoch formats take numbers auto mode would not trust.
    assert text_time("1772360430:x", text_format="epoch") == utc(2026, 3, 1, 10, 20, 30)
    assert text_time("1772360430123|x", text_format="epoch_ms") == utc(
        2026, 3, 1, 10, 20, 30, 123000
    )
    assert text_time("1772360430 x", text_format="epoch_ms") is None
    # none: always the receive time, counted as missing.
    parser = TimeParser(text_format="none")
    assert parser.from_text("2026-03-01T10:00:00Z x", NOW) is None
    assert parser.counts["missing"] == 1


def test_strptime_formats() -> None:
    apache = '[01/Mar/2026:10:20:30 +0100] "GET / HTTP/1.1" 200'
    assert text_time(apache, text_format="[%d/%b/%Y:%H:%M:%S %z]") == utc(2026, 3, 1, 9, 20, 30)
    # Characters glued to the stamp ("12:00:00:") are left over and dropped.
    assert text_time("01.03.2026 10:20:30: started", text_format="%d.%m.%Y %H:%M:%S") == utc(
        2026, 3, 1, 10, 20, 30
    )
    # No year: inferred like syslog; no date at all: today, or yesterday if in the future.
    assert text_time("03/01 10:20:30 x", text_format="%m/%d %H:%M:%S") == utc(
        2026, 3, 1, 10, 20, 30
    )
    assert text_time("11:59:00 INFO", text_format="%H:%M:%S") == utc(2026, 3, 15, 11, 59)
    assert text_time("23:00:00 INFO", text_format="%H:%M:%S") == utc(2026, 3, 14, 23)
    parser = TimeParser(text_format="%d.%m.%Y %H:%M:%S")
    assert parser.from_text("INFO 01.03.2026 10:20:30", NOW) is None
    assert parser.from_text("short", NOW) is None
    assert parser.counts == {"parsed": 0, "missing": 2, "invalid": 0}


def test_format_and_timezone_options_are_checked() -> None:
    assert check_format("%Y") == "%Y"
    with pytest.raises(ValueError, match="unknown time format"):
        check_format("iso")
    with pytest.raises(ValueError, match="unknown time format"):
        TimeParser(text_format="nonsense")
    for bad in ("Mars/Olympus", "+25:00", "../../etc/passwd", "", "\x00"):
        with pytest.raises(ValueError, match="timezone"):
            parse_timezone(bad)
    assert parse_timezone("+05:30") == timezone(timedelta(hours=5, minutes=30))
    assert parse_timezone("Europe/Paris") == ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    "argv",
    [
        ["--time-format", "iso"],
        ["--time-format", "strftime"],
        ["--timezone", "Nowhere/Land"],
        ["--timezone", "+99:00"],
    ],
)
def test_the_cli_refuses_bad_time_options(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["ship", "app.log", "--service", "s", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown" in err or "out of range" in err


# -- JSON lines: time fields --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"timestamp": "2026-03-01T10:20:30Z"}, utc(2026, 3, 1, 10, 20, 30)),
        ({"time": "2026-03-01T10:20:30.5+01:00"}, utc(2026, 3, 1, 9, 20, 30, 500000)),
        ({"ts": 1772360430}, utc(2026, 3, 1, 10, 20, 30)),
        ({"ts": 1772360430.25}, utc(2026, 3, 1, 10, 20, 30, 250000)),
        ({"ts": 1772360430123}, utc(2026, 3, 1, 10, 20, 30, 123000)),
        ({"ts": 1772360430123456}, utc(2026, 3, 1, 10, 20, 30, 123456)),
        ({"ts": 1772360430123456789}, utc(2026, 3, 1, 10, 20, 30, 123457)),
        ({"ts": "1772360430"}, utc(2026, 3, 1, 10, 20, 30)),
        ({"@timestamp": "2026-03-01T10:20:30"}, utc(2026, 3, 1, 10, 20, 30)),
        ({"@timestamp": "2026-03-01"}, utc(2026, 3, 1)),
        # The first field that holds a usable time wins.
        ({"timestamp": "garbage", "time": "2026-03-01T10:20:30Z"}, utc(2026, 3, 1, 10, 20, 30)),
    ],
)
def test_json_time_fields(fields: dict[str, object], expected: datetime) -> None:
    parser = TimeParser()
    assert parser.from_fields(fields, NOW)[1] == expected
    assert parser.counts["parsed"] == 1


def test_custom_json_fields_and_the_text_format_for_their_strings() -> None:
    parser = TimeParser(
        json_fields=("when",), text_format="%d/%m/%Y %H:%M", tz=parse_timezone("+01:00")
    )
    assert parser.from_fields({"when": "01/03/2026 10:20"}, NOW) == ("when", utc(2026, 3, 1, 9, 20))
    assert parser.from_fields({"timestamp": "2026-03-01T10:00:00Z"}, NOW) == (None, None)
    assert parser.counts == {"parsed": 1, "missing": 1, "invalid": 0}


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "",
        True,
        None,
        [2026, 3, 1],
        {"nested": "2026-03-01T10:00:00Z"},
        -1,
        float("nan"),
        float("inf"),
        10**400,
        1e308,
        "9" * 20,
        "0000-00-00T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2026-03-01T10:00:00Z" + " " * 100,
        "2099-01-01T00:00:00Z",
    ],
)
def test_unusable_json_times_fall_back_and_are_counted_invalid(value: object) -> None:
    parser = TimeParser()
    assert parser.from_fields({"ts": value}, NOW) == (None, None)
    assert parser.counts == {"parsed": 0, "missing": 0, "invalid": 1}


# -- the event -----------------------------------------------------------------------------


def event_for(text: str, parser: TimeParser | None = None) -> LogEvent:
    """The validated event; without a time from the line it has no ``timestamp`` to send
    (the model would default it to now; the gateway uses its receive time)."""
    raw = record_to_event(
        text,
        event_id="f0123-0",
        service="svc",
        host="h",
        env=None,
        source={"log_file": "/x", "log_offset": 0},
        times=parser or TimeParser(),
        now=NOW,
    )
    event = LogEvent.model_validate(raw)
    return event if "timestamp" in raw else event.model_copy(update={"timestamp": None})


def test_the_event_carries_the_lines_time_and_keeps_the_whole_line() -> None:
    event = event_for("2026-03-01 10:20:30,250 ERROR boom")
    assert event.timestamp == utc(2026, 3, 1, 10, 20, 30, 250000)
    assert event.message == "2026-03-01 10:20:30,250 ERROR boom"
    assert event.level == "ERROR"


def test_an_unusable_json_time_is_kept_in_metadata_and_receive_time_is_used() -> None:
    raw = record_to_event(
        json.dumps({"msg": "hi", "ts": "yesterday-ish"}),
        event_id="f0123-0",
        service="svc",
        host=None,
        env=None,
        source={},
        now=NOW,
    )
    assert "timestamp" not in raw  # the gateway stamps it with its receive time
    assert raw["metadata"]["ts"] == "yesterday-ish"
    used = record_to_event(
        json.dumps({"msg": "hi", "ts": "2026-03-01T10:00:00Z"}),
        event_id="f0123-1",
        service="svc",
        host=None,
        env=None,
        source={},
        now=NOW,
    )
    assert used["timestamp"] == "2026-03-01T10:00:00+00:00"
    assert "ts" not in used["metadata"]


def test_a_multiline_record_takes_the_time_of_its_first_line() -> None:
    trace = (
        "2026-03-01 10:20:30 ERROR failed\n"
        "Traceback (most recent call last):\n"
        "2026-03-02 11:00:00 a later stamp inside the trace does not count"
    )
    assert event_for(trace).timestamp == utc(2026, 3, 1, 10, 20, 30)
    # A JSON line with a raw stack trace joined to it: the JSON line's time.
    joined = json.dumps({"msg": "boom", "ts": "2026-03-01T10:20:30Z"}) + "\n  at frame one"
    event = event_for(joined)
    assert event.timestamp == utc(2026, 3, 1, 10, 20, 30)
    assert event.message == joined


TEN = utc(2026, 3, 1, 10)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x" * 10 * 1024 * 1024, None),  # a 10 MB line
        ("2026-03-01T10:00:00Z " + "y" * 10 * 1024 * 1024, TEN),
        ("[" * 100_000, None),
        ("{" * 100_000, None),  # deeper than json can recurse
        ('{"ts": ' + "[" * 100_000 + "}", None),
        ("\ufffd\ufffd\x00\x01 invalid UTF-8 as decoded by the tailer", None),
        ("2026-03-01T10:00:00\ufffd", TEN),
        ("\u202e2026-03-01T10:00:00Z bidi override first", None),
        ('{"ts": 1e400, "msg": "inf"}', None),
        ('{"ts": NaN, "msg": "nan"}', None),
        ('{"ts": ' + "9" * 4000 + ', "msg": "big int"}', None),
    ],
)
def test_hostile_records_never_raise_and_validate(text: str, expected: datetime | None) -> None:
    parser = TimeParser()
    assert event_for(text, parser).timestamp == expected
    assert sum(parser.counts.values()) == 1
    assert parser.counts["parsed"] == (expected is not None)


@settings(max_examples=300, deadline=None)
@given(
    line=st.text(max_size=200),
    fmt=st.sampled_from(
        ["auto", "iso8601", "syslog", "epoch", "epoch_ms", "%d/%b/%Y:%H:%M:%S", "%H:%M"]
    ),
)
def test_any_text_is_parsed_without_raising(line: str, fmt: str) -> None:
    parser = TimeParser(text_format=fmt)
    when = parser.from_text(line, NOW)
    assert when is None or (datetime(1970, 1, 1, tzinfo=UTC) <= when <= NOW + timedelta(minutes=1))
    assert sum(parser.counts.values()) == 1


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(value=_json_values)
def test_any_json_time_value_is_parsed_without_raising(value: object) -> None:
    parser = TimeParser()
    key, when = parser.from_fields({"timestamp": value}, NOW)
    assert (key is None) == (when is None)
    assert sum(parser.counts.values()) == 1
