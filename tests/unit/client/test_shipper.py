"""The file shipper on temp files: rotation, truncation, restarts, multi-line records.

Every test checks that each line written arrives exactly once. The sink stands in
for the gateway (acknowledging like a 202); the HTTP retry rules are tested in
test_retry.py and the real gateway in tests/integration/client.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from logriver_client.retry import RetryGate, RetryPolicy
from logriver_client.shipper import tail
from logriver_client.shipper.ship import Shipper, ShipperConfig
from logriver_client.transport import EncodedEvent, Outcome
from logriver_common.event import LogEvent


class MemorySink:
    """Acknowledges like the gateway; ``fail_next`` batches are given up on (not acked)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail_next = 0
        self.closed = False

    def send(self, batch: Sequence[EncodedEvent], gate: RetryGate) -> Outcome:
        if self.fail_next:
            self.fail_next -= 1
            self.events_attempted = [json.loads(e.data) for e in batch]
            return Outcome(failed=len(batch), errors=["gateway down"])
        self.events.extend(json.loads(e.data) for e in batch)
        return Outcome(delivered=len(batch))

    def close(self) -> None:
        self.closed = True

    def reset_after_fork(self) -> None:
        pass

    def stored(self) -> dict[str, dict[str, Any]]:
        """What the writer would store: one document per id."""
        return {e["id"]: e for e in self.events}

    def messages(self) -> list[str]:
        return [e["message"] for e in self.stored().values()]


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def make_shipper(tmp_path: Path) -> Iterator[Callable[..., Shipper]]:
    made: list[Shipper] = []

    def make(sink: MemorySink, patterns: Sequence[str] | None = None, **options: Any) -> Shipper:
        settings: dict[str, Any] = {
            "patterns": patterns or [str(tmp_path / "app.log")],
            "service": "shipped",
            "checkpoint": tmp_path / "state" / "checkpoint.json",
            "host": "h1",
            "batch_size": 50,
            "batch_wait": 0.0,
            "rotate_wait": 0.2,
            "multiline_timeout": 0.2,
            "progress_interval": 0,
        }
        settings.update(options)
        shipper = Shipper(ShipperConfig(**settings), sink, progress_stream=io.StringIO())
        made.append(shipper)
        return shipper

    yield make
    for shipper in made:
        if shipper.tailer.files:
            shipper.shutdown()


def ship_until(shipper: Shipper, done: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        shipper.poll_once()
        if done():
            return
        time.sleep(0.01)
    raise AssertionError(f"not shipped within {within}s")


def write(path: Path, lines: Sequence[str]) -> None:
    with path.open("a") as handle:
        handle.writelines(f"{line}\n" for line in lines)


def exactly_once(sink: MemorySink, expected: Sequence[str]) -> None:
    counts = Counter(sink.messages())
    assert counts == Counter(expected), {
        "missing": sorted(set(expected) - set(counts)),
        "duplicated": sorted(m for m, c in counts.items() if c > 1),
        "unexpected": sorted(set(counts) - set(expected)),
    }


def shipped_all(sink: MemorySink, expected: Sequence[str]) -> Callable[[], bool]:
    return lambda: set(expected) <= set(sink.messages())


def lines(prefix: str, n: int) -> list[str]:
    return [f"{prefix} line {i}" for i in range(n)]


def test_appended_lines_ship_once_in_order(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    log = tmp_path / "app.log"
    first = lines("a", 120)
    write(log, first)
    shipper = make_shipper(sink)
    ship_until(shipper, shipped_all(sink, first))
    with log.open("a") as handle:
        handle.write("partial")  # no newline yet: must wait
    shipper.poll_once()
    assert "partial" not in sink.messages()
    with log.open("a") as handle:
        handle.write(" now complete\n")
    second = lines("b", 30)
    write(log, second)
    everything = [*first, "partial now complete", *second]
    ship_until(shipper, shipped_all(sink, everything))
    exactly_once(sink, everything)
    assert [e["message"] for e in sink.events] == everything  # file order
    for event in sink.events:
        LogEvent.model_validate(event)


def test_rotation_by_rename_loses_and_duplicates_nothing(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    log = tmp_path / "app.log"
    write(log, lines("old", 50))
    shipper = make_shipper(sink)
    ship_until(shipper, shipped_all(sink, lines("old", 50)))
    with log.open("a") as app:  # the app's open handle survives the rename
        app.write("old unread 1\n")
        app.flush()
        log.rename(tmp_path / "app.log.1")
        write(log, lines("new", 40))
        app.write("old late write\n")  # written after the rename, before the app reopens
    expected = [*lines("old", 50), "old unread 1", "old late write", *lines("new", 40)]
    ship_until(shipper, lambda: not shipper.tailer.files.keys() - {_key(log)})
    ship_until(shipper, shipped_all(sink, expected))
    exactly_once(sink, expected)


def test_rotation_with_a_glob_that_matches_rotated_files(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    log = tmp_path / "app.log"
    write(log, lines("one", 30))
    shipper = make_shipper(sink, [str(tmp_path / "app.log*")])
    ship_until(shipper, shipped_all(sink, lines("one", 30)))
    for generation in range(3):
        os.replace(log, tmp_path / f"app.log.{generation + 1}")
        write(log, lines(f"gen{generation}", 25))
        shipper.poll_once()
    expected = [*lines("one", 30), *(m for g in range(3) for m in lines(f"gen{g}", 25))]
    ship_until(shipper, shipped_all(sink, expected))
    exactly_once(sink, expected)


@pytest.mark.parametrize("pattern", ["app.log", "app.log*"])
def test_copytruncate_loses_and_duplicates_nothing(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper], pattern: str
) -> None:
    log = tmp_path / "app.log"
    write(log, lines("before", 40))
    shipper = make_shipper(sink, [str(tmp_path / pattern)])
    ship_until(shipper, shipped_all(sink, lines("before", 40)))
    # Written after our last read and before logrotate copies: only the copy has them.
    write(log, lines("unread", 5))
    shutil.copyfile(log, tmp_path / "app.log.1")
    if pattern.endswith("*"):
        shipper.poll_once()  # the copy is seen before the truncation
    with log.open("r+") as handle:
        handle.truncate(0)
    write(log, lines("after", 3))  # shorter than before: truncation by size
    expected = [*lines("before", 40), *lines("unread", 5), *lines("after", 3)]
    ship_until(shipper, shipped_all(sink, expected))
    write(log, lines("later", 10))
    expected += lines("later", 10)
    ship_until(shipper, shipped_all(sink, expected))
    exactly_once(sink, expected)


def test_truncation_rewritten_past_the_old_offset_is_detected(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    log = tmp_path / "app.log"
    write(log, ["short 1", "short 2"])
    shipper = make_shipper(sink)
    ship_until(shipper, shipped_all(sink, ["short 1", "short 2"]))
    with log.open("w") as handle:  # truncate and write more than before, between two polls
        handle.writelines(f"{line}\n" for line in lines("rewritten", 20))
    expected = ["short 1", "short 2", *lines("rewritten", 20)]
    ship_until(shipper, shipped_all(sink, expected))
    exactly_once(sink, expected)


def test_deleted_and_recreated_file(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    log = tmp_path / "app.log"
    write(log, ["header", *lines("first", 20)])
    shipper = make_shipper(sink)
    ship_until(shipper, shipped_all(sink, lines("first", 20)))
    log.unlink()
    shipper.poll_once()
    write(log, ["header", *lines("second", 20)])  # same first line as the deleted file
    expected = [*lines("first", 20), *lines("second", 20)]
    ship_until(shipper, shipped_all(sink, expected))
    counts = Counter(sink.messages())
    assert counts["header"] == 2  # one per file: different streams, different ids
    del counts["header"]
    assert counts == Counter(expected)
    ship_until(shipper, lambda: len(shipper.tailer.files) == 1)  # the deleted one is let go


def test_restart_resumes_from_the_checkpoint(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    log = tmp_path / "app.log"
    write(log, lines("run1", 70))
    first = make_shipper(sink)
    ship_until(first, shipped_all(sink, lines("run1", 70)))
    first.shutdown()
    write(log, lines("down", 15))
    second = make_shipper(sink)
    expected = [*lines("run1", 70), *lines("down", 15)]
    ship_until(second, shipped_all(sink, expected))
    exactly_once(sink, expected)
    assert len(sink.events) == 85  # nothing was even re-sent


def test_crash_after_ack_before_checkpoint_resends_the_same_ids(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    log = tmp_path / "app.log"
    write(log, lines("a", 10))
    shipper = make_shipper(sink)
    ship_until(shipper, shipped_all(sink, lines("a", 10)))
    checkpoint = tmp_path / "state" / "checkpoint.json"
    saved = checkpoint.read_bytes()
    write(log, lines("b", 10))
    ship_until(shipper, shipped_all(sink, lines("b", 10)))
    checkpoint.write_bytes(saved)  # "crash": the ack for b arrived, its checkpoint did not
    first_ids = {e["message"]: e["id"] for e in sink.events}
    shipper.tailer.close()
    restarted = make_shipper(sink)
    ship_until(restarted, lambda: len(sink.events) == 30)
    resent = sink.events[20:]
    assert [e["message"] for e in resent] == lines("b", 10)
    assert all(first_ids[e["message"]] == e["id"] for e in resent)
    exactly_once(sink, [*lines("a", 10), *lines("b", 10)])  # stored once, by id


def test_unacknowledged_batches_are_not_checkpointed(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    log = tmp_path / "app.log"
    write(log, lines("x", 10))
    sink.fail_next = 2
    shipper = make_shipper(sink)
    shipper.poll_once()
    assert sink.events == []
    ids_tried = [e["id"] for e in sink.events_attempted]
    assert (
        json.loads((tmp_path / "state" / "checkpoint.json").read_text())["streams"][0]["offset"]
        == 0
    )
    ship_until(shipper, shipped_all(sink, lines("x", 10)))
    assert [e["id"] for e in sink.events] == ids_tried


def test_rotated_while_the_shipper_was_down(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    log = tmp_path / "app.log"
    write(log, lines("early", 10))
    first = make_shipper(sink)
    ship_until(first, shipped_all(sink, lines("early", 10)))
    first.shutdown()
    write(log, lines("unshipped", 5))
    log.rename(tmp_path / "app.log.1")
    write(log, lines("fresh", 5))
    second = make_shipper(sink)
    expected = [*lines("early", 10), *lines("unshipped", 5), *lines("fresh", 5)]
    ship_until(second, shipped_all(sink, expected))
    exactly_once(sink, expected)


def test_multiline_stack_traces_are_joined(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    log = tmp_path / "app.log"
    trace = [
        "2026-01-01 10:00:01 ERROR payment failed",
        "Traceback (most recent call last):",
        '  File "pay.py", line 3, in charge',
        "    raise TimeoutError()",
        "TimeoutError",
    ]
    write(log, ["2026-01-01 10:00:00 INFO start", *trace, "2026-01-01 10:00:02 INFO retry"])
    shipper = make_shipper(sink, multiline_start=r"^\d{4}-\d{2}-\d{2} ")
    last = "2026-01-01 10:00:02 INFO retry"
    ship_until(shipper, shipped_all(sink, [last]))  # the last one goes out after the idle timeout
    exactly_once(sink, ["2026-01-01 10:00:00 INFO start", "\n".join(trace), last])
    by_message = {e["message"]: e for e in sink.events}
    assert by_message["\n".join(trace)]["level"] == "ERROR"
    # A restart resumes after the joined record, never in the middle of it.
    shipper.shutdown()
    write(log, ["2026-01-01 10:00:03 INFO done"])
    again = make_shipper(sink, multiline_start=r"^\d{4}-\d{2}-\d{2} ")
    ship_until(again, shipped_all(sink, ["2026-01-01 10:00:03 INFO done"]))
    assert len(sink.events) == 4


def test_json_lines_become_fields_and_plain_lines_are_wrapped(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    log = tmp_path / "app.log"
    record = {
        "time": "2026-01-01T10:00:00Z",
        "lvl": "warn",
        "msg": "disk almost full",
        "service": "disk watcher!",
        "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736",
        "span_id": "00f067aa0ba902b7",
        "free.bytes": 1024,
        "$op": "x",
    }
    write(log, [json.dumps(record), "plain ERROR text", "{not json"])
    shipper = make_shipper(sink, env="prod")
    ship_until(shipper, lambda: len(sink.events) == 3)
    parsed, plain, broken = (LogEvent.model_validate(e) for e in sink.events)
    assert parsed.message == "disk almost full"
    assert parsed.level == "WARNING"
    assert parsed.service == "disk_watcher_"
    assert parsed.timestamp.isoformat() == "2026-01-01T10:00:00+00:00"
    assert parsed.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert parsed.env == "prod"
    assert parsed.metadata is not None
    assert parsed.metadata["free_bytes"] == 1024
    assert parsed.metadata["op"] == "x"
    assert parsed.metadata["log_file"] == str(log)
    assert (plain.message, plain.level, plain.service) == ("plain ERROR text", "ERROR", "shipped")
    assert broken.message == "{not json"


def test_progress_line_and_status_file(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    write(tmp_path / "app.log", lines("p", 5))
    status = tmp_path / "status.json"
    shipper = make_shipper(sink, status_file=status, progress_interval=0.01)
    ship_until(
        shipper, lambda: status.exists() and json.loads(status.read_text())["delivered"] == 5
    )
    body = json.loads(status.read_text())
    assert body["files"] == 1
    assert body["backlog_bytes"] == 0
    stream = shipper.progress_stream
    assert isinstance(stream, io.StringIO)
    assert "5 delivered" in stream.getvalue()


def _key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def test_a_large_backlog_is_read_in_bounded_steps(
    tmp_path: Path,
    sink: MemorySink,
    make_shipper: Callable[..., Shipper],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tail, "READ_CHUNK", 256)
    monkeypatch.setattr(tail, "MAX_READ_PER_POLL", 1024)
    backlog = lines("backlog", 500)
    write(tmp_path / "app.log", backlog)
    shipper = make_shipper(sink)
    shipper.poll_once()
    first_poll = shipper.tailer.lines_read
    assert 0 < first_poll < 100  # about 1 KiB of ~18-byte lines
    ship_until(shipper, shipped_all(sink, backlog))
    exactly_once(sink, backlog)


def test_event_times_come_from_the_lines_and_multiline_records_take_the_first(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    log = tmp_path / "app.log"
    write(
        log,
        [
            "2026-01-01 10:00:00,250 ERROR failed",
            "Traceback (most recent call last):",
            "2026-01-01 10:00:05 ERROR next",
            json.dumps({"msg": "json", "ts": 1767261600}),
            json.dumps({"msg": "bad json time", "ts": "soon"}),
            "no stamp INFO here",
            "9999-12-31 23:59:59 ERROR absurd",
        ],
    )
    status = tmp_path / "status.json"
    shipper = make_shipper(
        sink, multiline_start=r"^(\d{4}-|\{|no |9999)", status_file=status, progress_interval=0.01
    )
    ship_until(shipper, lambda: len(sink.events) == 6)
    ship_until(shipper, lambda: json.loads(status.read_text())["time_parsed"] == 3)
    by_message = {e["message"].split("\n")[0]: e for e in sink.events}
    assert by_message["2026-01-01 10:00:00,250 ERROR failed"]["timestamp"] == (
        "2026-01-01T10:00:00.250000+00:00"
    )
    assert by_message["2026-01-01 10:00:05 ERROR next"]["timestamp"] == "2026-01-01T10:00:05+00:00"
    assert by_message["json"]["timestamp"] == "2026-01-01T10:00:00+00:00"
    # No usable time: no timestamp is sent, and the gateway uses its receive time.
    for message in ("bad json time", "no stamp INFO here", "9999-12-31 23:59:59 ERROR absurd"):
        assert "timestamp" not in by_message[message]
    assert by_message["bad json time"]["metadata"]["ts"] == "soon"
    body = json.loads(status.read_text())
    assert (body["time_parsed"], body["time_missing"], body["time_invalid"]) == (3, 1, 2)
    assert "3 from the line, 1 missing, 2 invalid" in shipper.progress.line()


def test_the_time_options_reach_the_parser(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    write(tmp_path / "app.log", ["01/03/2026 10:20 x", json.dumps({"when": "2026-03-01T10:00:00"})])
    shipper = make_shipper(
        sink,
        time_fields=("when",),
        time_format="%d/%m/%Y %H:%M",
        timezone=ZoneInfo("Europe/Berlin"),
    )
    ship_until(shipper, lambda: len(sink.events) == 2)
    assert [e["timestamp"] for e in sink.events] == [
        "2026-03-01T09:20:00+00:00",
        "2026-03-01T09:00:00+00:00",
    ]


def test_a_resent_batch_carries_the_same_times(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    write(tmp_path / "app.log", ["plain line without a stamp", "2026-01-01T00:00:00Z with one"])
    sink.fail_next = 1
    shipper = make_shipper(sink)
    shipper.poll_once()
    attempted = sink.events_attempted
    ship_until(shipper, lambda: len(sink.events) == 2)
    assert sink.events == attempted  # encoded once when read: same ids, same times
    assert shipper.times.counts == {"parsed": 1, "missing": 1, "invalid": 0}


def test_hostile_files_never_stop_the_shipper_and_every_event_is_acceptable(
    tmp_path: Path, sink: MemorySink, make_shipper: Callable[..., Shipper]
) -> None:
    log = tmp_path / "app.log"
    hostile = [
        b"x" * (10 * 1024 * 1024),  # a 10 MB line: cut into 256 KiB records
        b"\xff\xfe\xc3\x28 invalid UTF-8 2026-01-01",
        b"2026-01-01T10:00:00Z \xc3\x28 stamp then invalid UTF-8",
        b"nul \x00 in the middle",
        b'{"msg": "lone \\ud800 surrogate", "ts": "2026-01-01T10:00:00Z", "host": "h\\u0000"}',
        b'{"msg": "nul \\u0000 inside", "k\\u0000": "v\\u0000", "big": ' + b"9" * 30 + b"}",
        b"{" * 50_000,
        b'{"ts": ' + b"[" * 50_000 + b"}",
        b"0000-00-00 00:00:00 year zero",
        b"garbage \x1b[31m terminal escapes \x07",
        b"last line",
    ]
    log.write_bytes(b"\n".join(hostile) + b"\n")
    shipper = make_shipper(sink, batch_size=500)
    ship_until(shipper, lambda: any(e["message"] == "last line" for e in sink.events), within=60)
    assert len(sink.events) == 40 + len(hostile) - 1
    for raw in sink.events:
        LogEvent.model_validate(raw)  # what the gateway checks: none would be refused
    stamped = [e for e in sink.events if "timestamp" in e]
    assert {e["timestamp"] for e in stamped} == {"2026-01-01T10:00:00+00:00"}
    assert len(stamped) == 2
    counts = shipper.times.counts
    assert counts["parsed"] == 2
    assert counts["invalid"] == 1  # year zero
    assert sum(counts.values()) == len(sink.events)


def test_reading_pauses_while_the_gateway_is_down_and_resumes_exactly_once(
    tmp_path: Path,
    sink: MemorySink,
    make_shipper: Callable[..., Shipper],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tail, "READ_CHUNK", 256)
    monkeypatch.setattr(tail, "MAX_READ_PER_POLL", 512)
    backlog = lines("outage", 2000)
    write(tmp_path / "app.log", backlog)
    shipper = make_shipper(sink, batch_size=20)
    shipper.retry = RetryPolicy(base_delay=0.0, max_delay=0.0)
    sink.fail_next = 10**9  # the gateway is down
    for _ in range(200):
        shipper.poll_once()
    # Four batches wait, plus at most one poll's worth: the file is not read into memory.
    assert len(shipper._pending) < 4 * 20 + 40
    assert shipper.tailer.lines_read < 200
    sink.fail_next = 0
    ship_until(shipper, shipped_all(sink, backlog), within=30)
    exactly_once(sink, backlog)
