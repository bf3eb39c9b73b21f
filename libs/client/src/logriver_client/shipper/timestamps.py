"""The event time of a shipped line: from the line itself, with receive time as the fallback.

A backlog shipped late must land at the time it was written, not the time it
was shipped (it would otherwise fill "now" and fire alerts). So the time comes
from a JSON field (JSON lines) or from a timestamp at the start of the line
(plain lines). A stamp that is missing, unparseable or absurd (before 1970,
after now, a year 0 or 9999) is not sent: the gateway then uses its receive
time. Every line is counted as ``parsed``, ``missing`` or ``invalid``.

Parsing never raises and looks at a bounded prefix of the line, so a hostile
line (garbage, a 10 MB line, invalid UTF-8 already replaced by U+FFFD) costs
no more than a normal one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_JSON_FIELDS = ("timestamp", "time", "ts", "@timestamp")
NAMED_FORMATS = ("auto", "iso8601", "rfc3339", "syslog", "epoch", "epoch_ms", "none")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # the gateway refuses anything before
# A stamp this far in the future is a wrong clock or a wrong format, not a real time.
# The gateway's own limit is 5 minutes; stay inside it.
FUTURE_TOLERANCE = timedelta(seconds=60)
PREFIX_CHARS = 128  # how much of a line a leading timestamp may span
MAX_FIELD_CHARS = 64  # a longer JSON time value is not a time

_ISO = re.compile(
    r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})[Tt ](?P<H>\d{2}):(?P<M>\d{2})"
    r"(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?| ?UTC| ?GMT)?(?![\d:.,])"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_SYSLOG = re.compile(
    r"(?P<b>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(?P<d>\d{1,2}) "
    r"(?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?(?![\d:])"
)
_EPOCH_S = re.compile(r"(?P<n>\d{9,10}(?:\.\d{1,9})?)(?![\d.])")
_EPOCH_MS = re.compile(r"(?P<n>\d{12,13}(?:\.\d{1,6})?)(?![\d.])")
_NUMBER = re.compile(r"\d{1,20}(?:\.\d{1,9})?")
# Auto mode also accepts a stamp in brackets: "[2026-01-01 12:00:00,123] INFO ...".
_OPENERS = "[("


class TimeOutcome(StrEnum):
    PARSED = "parsed"  # the event carries the line's time
    MISSING = "missing"  # the line has no time: receive time
    INVALID = "invalid"  # the line has a time that cannot be used: receive time


def parse_timezone(name: str) -> tzinfo | None:
    """``UTC``, ``local``, an IANA name (``Europe/Berlin``) or an offset (``+02:00``).

    ``None`` means local time (the shipper's host), resolved per stamp so that
    daylight saving time is applied for each date."""
    if name.lower() == "local":
        return None
    if name.upper() in ("UTC", "Z"):
        return UTC
    offset = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        delta = timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3)))
        if delta >= timedelta(hours=24):
            raise ValueError(f"timezone offset out of range: {name!r}")
        return timezone(sign * delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown timezone {name!r} (use UTC, local, +HH:MM or an IANA name)"
        ) from exc


def check_format(fmt: str) -> str:
    """A named format, or a strptime format (it must contain a ``%`` directive)."""
    if fmt in NAMED_FORMATS or "%" in fmt:
        return fmt
    raise ValueError(
        f"unknown time format {fmt!r}: use one of {', '.join(NAMED_FORMATS)} or a strptime format"
    )


def _fraction(digits: str | None) -> int:
    return int((digits or "0")[:6].ljust(6, "0"))


def _offset(text: str | None) -> tzinfo | None:
    if not text:
        return None
    text = text.strip()
    if text in ("Z", "z", "UTC", "GMT"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or "0")
    if hours > 23 or minutes > 59:
        raise ValueError("offset out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


@dataclass(slots=True)
class TimeParser:
    """Finds the event time of one record; keeps counts of what it found."""

    json_fields: tuple[str, ...] = DEFAULT_JSON_FIELDS
    text_format: str = "auto"
    tz: tzinfo | None = UTC  # for stamps without an offset; None = local time
    counts: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in TimeOutcome})
    _strptime_tokens: int = field(default=0, init=False, repr=False)
    _strptime_has: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        check_format(self.text_format)
        if "%" in self.text_format:
            self._strptime_tokens = len(self.text_format.split()) or 1
            directives = set(re.findall(r"%(.)", self.text_format.replace("%%", "")))
            if directives & set("YyGsc"):
                self._strptime_has = "year"
            elif directives & set("dmbBjxUW"):
                self._strptime_has = "date"
            else:
                self._strptime_has = "time"

    # -- entry points ----------------------------------------------------------------------

    def from_fields(
        self, fields: Mapping[str, object], now: datetime
    ) -> tuple[str | None, datetime | None]:
        """For a JSON line: (the field that held a usable time, the time). Counted."""
        seen = False
        for key in self.json_fields:
            if key not in fields:
                continue
            seen = True
            when = self._checked(self._value(fields[key], now), now)
            if when is not None:
                self.counts[TimeOutcome.PARSED] += 1
                return key, when
        self.counts[TimeOutcome.INVALID if seen else TimeOutcome.MISSING] += 1
        return None, None

    def from_text(self, text: str, now: datetime) -> datetime | None:
        """For a plain line (a multi-line record: its first line). Counted."""
        if self.text_format == "none":
            self.counts[TimeOutcome.MISSING] += 1
            return None
        found, when = self._leading(text[:PREFIX_CHARS], now)
        checked = self._checked(when, now)
        if checked is not None:
            self.counts[TimeOutcome.PARSED] += 1
        else:
            self.counts[TimeOutcome.INVALID if found else TimeOutcome.MISSING] += 1
        return checked

    # -- parsing -------------------------------------------------------------------------

    def _checked(self, when: datetime | None, now: datetime) -> datetime | None:
        if when is None:
            return None
        if when.tzinfo is None:
            when = self._localize(when)
            if when is None:
                return None
        try:
            utc = when.astimezone(UTC)
        except (OverflowError, ValueError):
            return None
        if utc < EARLIEST or utc > now + FUTURE_TOLERANCE:
            return None
        return utc

    def _localize(self, naive: datetime) -> datetime | None:
        if self.tz is not None:
            return naive.replace(tzinfo=self.tz)
        try:
            return naive.astimezone()  # naive means local time to astimezone()
        except (OverflowError, ValueError, OSError):
            return None

    def _value(self, value: object, now: datetime) -> datetime | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return _from_epoch(value)
        if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS:
            return None
        value = value.strip()
        if _NUMBER.fullmatch(value):
            return _from_epoch(value)
        match = _ISO.fullmatch(value)
        if match:
            return _iso(match)
        try:
            return datetime.fromisoformat(value)  # the rest of ISO 8601 ("2026-01-01")
        except ValueError:
            pass
        if self.text_format not in ("auto", "none"):
            return self._leading(value, now)[1]  # the configured format, as for plain lines
        return None

    def _leading(self, prefix: str, now: datetime) -> tuple[bool, datetime | None]:
        """(a stamp-like prefix was found, its time if it is a real date)."""
        fmt = self.text_format
        if "%" in fmt:
            return self._strptime(prefix, now)
        if prefix[:1] in _OPENERS:
            prefix = prefix[1:]
        if fmt == "auto":
            for parse in (self._iso_prefix, self._syslog_prefix, self._epoch_prefix):
                found, when = parse(prefix, now)
                if found:
                    return found, when
            return False, None
        if fmt in ("iso8601", "rfc3339"):
            return self._iso_prefix(prefix, now)
        if fmt == "syslog":
            return self._syslog_prefix(prefix, now)
        if fmt == "epoch":
            return self._number_prefix(_EPOCH_S, prefix, 1.0)
        if fmt == "epoch_ms":
            return self._number_prefix(_EPOCH_MS, prefix, 1000.0)
        return False, None

    @staticmethod
    def _iso_prefix(prefix: str, now: datetime) -> tuple[bool, datetime | None]:
        match = _ISO.match(prefix)
        return (True, _iso(match)) if match else (False, None)

    def _syslog_prefix(self, prefix: str, now: datetime) -> tuple[bool, datetime | None]:
        match = _SYSLOG.match(prefix)
        if not match:
            return False, None
        month, day = _MONTHS[match["b"]], int(match["d"])
        clock = (int(match["H"]), int(match["M"]), int(match["S"]), _fraction(match["f"]))
        return True, self._with_year(lambda year: datetime(year, month, day, *clock), now)  # noqa: DTZ001

    def _with_year(self, build: Callable[[int], datetime], now: datetime) -> datetime | None:
        """A stamp without a year is from this year, or last year if that would be in the
        future (December lines read in January); Feb 29 looks back to the last leap year."""
        this_year = self._local_today(now).year
        for year in range(this_year, this_year - 8, -1):
            try:
                when = build(year)
            except ValueError:
                continue  # Feb 29 in a common year
            if self._checked(when, now) is not None:
                return when
        return None

    def _with_date(self, build: Callable[[date], datetime], now: datetime) -> datetime | None:
        """A stamp with only a time of day is from today, or yesterday if that would be
        in the future (a line written just before midnight, read just after)."""
        today = self._local_today(now)
        for day in (today, today - timedelta(days=1)):
            when = build(day)
            if self._checked(when, now) is not None:
                return when
        return None

    def _local_today(self, now: datetime) -> date:
        return (now.astimezone(self.tz) if self.tz is not None else now.astimezone()).date()

    @staticmethod
    def _number_prefix(
        pattern: re.Pattern[str], prefix: str, scale: float
    ) -> tuple[bool, datetime | None]:
        match = pattern.match(prefix)
        if not match:
            return False, None
        return True, _from_epoch(float(match["n"]) / scale)

    def _epoch_prefix(self, prefix: str, now: datetime) -> tuple[bool, datetime | None]:
        # In auto mode a leading number is a time only if it looks like a recent one:
        # 10 digits (seconds since 2001) or 13 (milliseconds), followed by a space.
        for pattern, scale in ((_EPOCH_S, 1.0), (_EPOCH_MS, 1000.0)):
            match = pattern.match(prefix)
            if (
                match
                and len(match["n"].split(".")[0]) in (10, 13)
                and prefix[match.end() : match.end() + 1] in (" ", "\t", "")
            ):
                return True, _from_epoch(float(match["n"]) / scale)
        return False, None

    def _strptime(self, prefix: str, now: datetime) -> tuple[bool, datetime | None]:
        # strptime wants the whole string: take as many whitespace-separated tokens as
        # the format has, and drop trailing characters it says are left over ("12:00:00:").
        tokens = re.match(rf"\s*(?:\S+\s+){{{self._strptime_tokens - 1}}}\S+", prefix)
        if tokens is None:
            return False, None
        candidate = tokens.group(0).strip()
        for _ in range(2):
            try:
                return True, self._strptime_one(candidate, now)
            except ValueError as exc:
                left = str(exc).removeprefix("unconverted data remains: ")
                if left == str(exc) or not left or len(left) >= len(candidate):
                    return False, None
                candidate = candidate[: -len(left)]
            except (OverflowError, TypeError):
                return False, None
        return False, None

    def _strptime_one(self, stamp: str, now: datetime) -> datetime | None:
        fmt = self.text_format
        if self._strptime_has == "year":
            return datetime.strptime(stamp, fmt)  # noqa: DTZ007 - the zone is applied after
        if self._strptime_has == "date":
            # Parse with the year in front: without one, strptime cannot read Feb 29.
            datetime.strptime(f"2000 {stamp}", f"%Y {fmt}")  # noqa: DTZ007 - raises if no match
            return self._with_year(
                lambda year: datetime.strptime(f"{year} {stamp}", f"%Y {fmt}"),  # noqa: DTZ007
                now,
            )
        datetime.strptime(f"2000-01-01 {stamp}", f"%Y-%m-%d {fmt}")  # noqa: DTZ007
        return self._with_date(
            lambda day: datetime.strptime(f"{day:%Y-%m-%d} {stamp}", f"%Y-%m-%d {fmt}"),  # noqa: DTZ007
            now,
        )


def _iso(match: re.Match[str]) -> datetime | None:
    try:
        return datetime(
            int(match["Y"]),
            int(match["m"]),
            int(match["d"]),
            int(match["H"]),
            int(match["M"]),
            int(match["S"] or 0),
            _fraction(match["f"]),
            tzinfo=_offset(match["tz"]),
        )
    except ValueError:
        return None  # year 0, month 13, 25 o'clock


def _from_epoch(value: float | str) -> datetime | None:
    """Epoch seconds; milliseconds, microseconds and nanoseconds are recognised by size."""
    try:
        seconds = float(value)
    except (OverflowError, ValueError):
        return None  # an integer too large for a float
    for scale in (1.0, 1e3, 1e6, 1e9):
        if seconds < 1e11 * scale or scale == 1e9:
            try:
                return datetime.fromtimestamp(seconds / scale, UTC)
            except (OverflowError, OSError, ValueError):
                return None
    return None
