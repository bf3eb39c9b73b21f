"""Joining multi-line records (stack traces) into one event.

With a start-of-record pattern, a line that does not match it continues the
record before it. A record is complete when the next record starts, when it
hits a size bound, or when its file has been quiet for ``timeout`` seconds (the
last record of a burst would otherwise wait for the next burst).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(slots=True)
class Line:
    start: int  # byte offset of the line in its file
    end: int  # offset just past its newline
    text: str


@dataclass(slots=True)
class Record:
    start: int
    end: int
    text: str
    lines: int = 1


class MultilineJoiner:
    def __init__(
        self,
        start_pattern: re.Pattern[str] | None,
        *,
        max_lines: int = 500,
        max_chars: int = 64 * 1024,
        timeout: float = 1.0,
    ) -> None:
        self.start_pattern = start_pattern
        self.max_lines = max_lines
        self.max_chars = max_chars
        self.timeout = timeout
        self._pending: Record | None = None
        self._parts: list[str] = []
        self._chars = 0
        self._last_fed = 0.0

    def feed(self, line: Line, now: float) -> list[Record]:
        """Add a line; returns the records it completed (zero or one, or the line itself)."""
        self._last_fed = now
        if self.start_pattern is None:
            return [Record(line.start, line.end, line.text)] if line.text.strip() else []
        starts = bool(self.start_pattern.search(line.text))
        done: list[Record] = []
        if self._pending is not None and (
            starts
            or self._pending.lines >= self.max_lines
            or self._chars + len(line.text) > self.max_chars
        ):
            done.append(self._finish())
        if self._pending is None:
            if not starts and not line.text.strip():
                return done  # a blank line between records carries nothing
            self._pending = Record(line.start, line.end, "", 0)
            self._parts, self._chars = [], 0
        self._parts.append(line.text)
        self._chars += len(line.text) + 1
        self._pending.end = line.end
        self._pending.lines += 1
        return done

    def _finish(self) -> Record:
        record = self._pending
        assert record is not None  # noqa: S101 - callers check
        record.text = "\n".join(self._parts).rstrip("\n")
        self._pending = None
        self._parts, self._chars = [], 0
        return record

    def flush_if_idle(self, now: float) -> list[Record]:
        if self._pending is not None and now - self._last_fed >= self.timeout:
            return [self._finish()]
        return []

    def flush(self) -> list[Record]:
        return [self._finish()] if self._pending is not None else []
