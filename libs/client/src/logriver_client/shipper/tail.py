"""Following log files by identity, through rotation, truncation and re-creation.

Files are tracked by (device, inode), not by path, and read through a file
descriptor we keep open:

- rename rotation: the old inode moves away from the path; we keep reading our
  descriptor to its end (the app may still write a little before it reopens),
  and start the new file at the path from byte 0;
- copytruncate: the size drops below our offset (or the first line changes):
  the file starts a new stream at 0; lines written between our last read and
  the copy are read from the copy when it can be found next to the file;
- deleted and re-created: the same as a rename (the old inode lives on as long
  as our descriptor does);
- a copy matched by the globs is not shipped twice: it is held until its
  original is truncated and then read only from where the original stopped.

Only complete lines are shipped; a partial last line waits for its newline
(or for the file to be rotated away).
"""

from __future__ import annotations

import glob
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from logriver_client.ids import short_hash, stream_token
from logriver_client.shipper.checkpoint import StreamState
from logriver_client.shipper.multiline import Line, MultilineJoiner, Record

FINGERPRINT_MAX = 256  # bytes of the first line that identify a file generation
TAIL_BYTES = 64  # bytes before the read position, to recognise a copy of a file
READ_CHUNK = 1024 * 1024
MAX_READ_PER_POLL = 4 * READ_CHUNK
MAX_LINE_BYTES = 256 * 1024

Key = tuple[int, int]


@dataclass(frozen=True, slots=True)
class ShipRecord:
    key: Key
    stream: str
    path: str
    start: int
    end: int
    text: str


def fingerprint(fd: int) -> tuple[str, int] | None:
    """Hash of the first line (up to 256 bytes); None until the first line is complete."""
    head = os.pread(fd, FINGERPRINT_MAX, 0)
    newline = head.find(b"\n")
    if newline >= 0:
        head = head[: newline + 1]
    elif len(head) < FINGERPRINT_MAX:
        return None
    return short_hash(head), len(head)


@dataclass(eq=False)
class TrackedFile:
    key: Key
    path: str
    fd: int
    stream: str
    joiner: MultilineJoiner
    read_offset: int = 0
    committed: int = 0
    fingerprint: str | None = None
    fp_len: int = 0
    buffer: bytearray = field(default_factory=bytearray)
    tail: bytes = b""
    orphan_since: float | None = None
    draining: bool = False
    inflight: int = 0
    persisted: bool = False
    copy_of: Key | None = None  # held: a copy of a live file, not read until it is truncated
    size: int = 0

    @property
    def line_start(self) -> int:
        """Offset of the first byte not yet consumed as a complete line."""
        return self.read_offset - len(self.buffer)

    def state(self) -> StreamState:
        return StreamState(
            stream=self.stream,
            path=self.path,
            dev=self.key[0],
            ino=self.key[1],
            fingerprint=self.fingerprint,
            offset=self.committed,
        )


class Tailer:
    def __init__(
        self,
        patterns: Sequence[str],
        *,
        multiline_start: re.Pattern[str] | None = None,
        multiline_timeout: float = 1.0,
        rotate_wait: float = 5.0,
        start_at_end: bool = False,
        restored: Iterable[StreamState] = (),
    ) -> None:
        self.patterns = [str(Path(p).expanduser()) for p in patterns]
        self.multiline_start = multiline_start
        self.multiline_timeout = multiline_timeout
        self.rotate_wait = rotate_wait
        self.start_at_end = start_at_end
        self.files: dict[Key, TrackedFile] = {}
        self._restored = list(restored)
        self._first_scan = True
        self.lines_read = 0

    # -- discovery ----------------------------------------------------------------------

    def _expand(self) -> list[str]:
        paths: set[str] = set()
        for pattern in self.patterns:
            if glob.has_magic(pattern):
                paths.update(glob.glob(pattern))
            else:
                paths.add(pattern)
        return sorted(paths)

    def _joiner(self) -> MultilineJoiner:
        return MultilineJoiner(self.multiline_start, timeout=self.multiline_timeout)

    def _open(self, path: str) -> tuple[int, os.stat_result] | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        return fd, st

    def _discover(self, now: float) -> None:
        seen: set[Key] = set()
        for path in self._expand():
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            key = (st.st_dev, st.st_ino)
            tracked = self.files.get(key)
            if tracked is None:
                opened = self._open(path)
                if opened is None:
                    continue
                fd, st = opened  # identity of what we opened, in case the path changed since
                key = (st.st_dev, st.st_ino)
                tracked = self.files.get(key)
                if tracked is None:
                    self._adopt(path, fd, st)
                else:
                    os.close(fd)
            seen.add(key)
            if tracked is not None:
                tracked.path = path
                tracked.orphan_since = None
        if self._first_scan:
            self._recover_moved()
            self._first_scan = False
        for key, tracked in self.files.items():
            if key not in seen and tracked.orphan_since is None:
                tracked.orphan_since = now

    def _adopt(self, path: str, fd: int, st: os.stat_result) -> TrackedFile:
        key = (st.st_dev, st.st_ino)
        fp = fingerprint(fd)
        tracked = TrackedFile(key, path, fd, stream_token(), self._joiner(), size=st.st_size)
        if fp is not None:
            tracked.fingerprint, tracked.fp_len = fp
        restored = self._take_restored(key, tracked.fingerprint, st.st_size)
        if restored is not None:
            self._resume(tracked, restored)
        elif (original := self._copy_source(tracked)) is not None:
            tracked.copy_of = original.key
        elif self.start_at_end and self._first_scan:
            tracked.read_offset = tracked.committed = self._last_line_end(fd, st.st_size)
        self.files[key] = tracked
        return tracked

    @staticmethod
    def _resume(tracked: TrackedFile, restored: StreamState) -> None:
        tracked.stream = restored.stream
        tracked.read_offset = tracked.committed = restored.offset
        tracked.persisted = True
        if restored.offset:
            start = max(0, restored.offset - TAIL_BYTES)
            tracked.tail = os.pread(tracked.fd, restored.offset - start, start)

    @staticmethod
    def _last_line_end(fd: int, size: int) -> int:
        """Where the last complete line ends (start-at-end must not start mid-line)."""
        position = size
        while position > 0:
            start = max(0, position - 4096)
            chunk = os.pread(fd, position - start, start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            position = start
        return 0

    def _take_restored(self, key: Key, fp: str | None, size: int) -> StreamState | None:
        for index, state in enumerate(self._restored):
            if (state.dev, state.ino) == key:
                del self._restored[index]
                if state.fingerprint == fp and state.offset <= size:
                    return state
                return None  # same inode, other content: truncated or reused inode
        return None

    def _recover_moved(self) -> None:
        """Checkpointed files the globs no longer match: rotated (renamed) or copied
        while the shipper was down. Find them next to where they were and finish them."""
        for state in self._restored:
            directory = Path(state.path).parent
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            candidates = sorted(entries, key=lambda e: e.inode() != state.ino)
            for entry in candidates:
                if not entry.is_file(follow_symlinks=False):
                    continue
                opened = self._open(entry.path)
                if opened is None:
                    continue
                fd, st = opened
                key = (st.st_dev, st.st_ino)
                fp = fingerprint(fd)
                if (
                    key in self.files
                    or fp is None
                    or fp[0] != state.fingerprint
                    or st.st_size < state.offset
                ):
                    os.close(fd)
                    continue
                tracked = TrackedFile(key, entry.path, fd, state.stream, self._joiner())
                tracked.fingerprint, tracked.fp_len = fp
                tracked.size = st.st_size
                if key != (state.dev, state.ino):
                    tracked.stream = stream_token()  # a copy: a new stream from the same offset
                self._resume(tracked, state)
                tracked.persisted = key == (state.dev, state.ino)
                tracked.orphan_since = 0.0  # not ours to follow: read to the end and retire
                self.files[key] = tracked
                break
        self._restored = []

    # -- copies (copytruncate) ----------------------------------------------------------

    def _copy_source(self, candidate: TrackedFile) -> TrackedFile | None:
        """The live file that ``candidate`` is a byte-for-byte copy of (so far), if any."""
        if candidate.fingerprint is None or candidate.size <= candidate.fp_len:
            return None
        for original in self.files.values():
            if original.fingerprint != candidate.fingerprint or original.copy_of is not None:
                continue
            size = candidate.size
            if os.fstat(original.fd).st_size < size:
                continue
            start = max(0, size - TAIL_BYTES)
            if os.pread(original.fd, size - start, start) == os.pread(
                candidate.fd, size - start, start
            ):
                return original
        return None

    def _find_copy(self, original: TrackedFile) -> None:
        """``original`` was truncated: read what it had not shipped from its copy."""
        offset = original.line_start
        for held in self.files.values():
            if held.copy_of == original.key:
                self._release(held, min(offset, held.size))
                return
        if not original.fingerprint or not offset:
            return
        try:
            entries = list(os.scandir(Path(original.path).parent))
        except OSError:
            return
        for entry in entries:
            if not entry.is_file(follow_symlinks=False) or entry.inode() == original.key[1]:
                continue
            opened = self._open(entry.path)
            if opened is None:
                continue
            fd, st = opened
            key = (st.st_dev, st.st_ino)
            fp = fingerprint(fd)
            start = max(0, offset - len(original.tail))
            if (
                key in self.files
                or fp is None
                or fp[0] != original.fingerprint
                or st.st_size < offset
                or os.pread(fd, offset - start, start) != original.tail
            ):
                os.close(fd)
                continue
            copy = TrackedFile(key, entry.path, fd, stream_token(), self._joiner(), size=st.st_size)
            copy.fingerprint, copy.fp_len = fp
            copy.orphan_since = 0.0  # finish it, then let it go
            self.files[key] = copy
            self._release(copy, offset)
            return

    @staticmethod
    def _release(copy: TrackedFile, offset: int) -> None:
        copy.copy_of = None
        copy.read_offset = copy.committed = offset
        copy.persisted = False

    # -- reading ------------------------------------------------------------------------

    def poll(self, now: float) -> list[ShipRecord]:
        self._discover(now)
        records: list[ShipRecord] = []
        for tracked in list(self.files.values()):
            records.extend(self._read(tracked, now))
        for tracked in list(self.files.values()):
            if tracked.copy_of is not None and tracked.copy_of not in self.files:
                self._release(tracked, tracked.size)  # its original shipped all of it
            if tracked.draining and tracked.inflight == 0:
                self._forget(tracked)
        return records

    def _truncated(self, tracked: TrackedFile, size: int) -> bool:
        if size < tracked.read_offset:
            return True
        if tracked.fingerprint is None or size == tracked.size:
            return False
        # Truncated and rewritten past our offset between two polls: the first line changed.
        head = os.pread(tracked.fd, tracked.fp_len, 0)
        return short_hash(head) != tracked.fingerprint

    def _read(self, tracked: TrackedFile, now: float) -> list[ShipRecord]:
        records: list[Record] = []
        size = os.fstat(tracked.fd).st_size
        if tracked.copy_of is not None:
            tracked.size = size
            return []
        if self._truncated(tracked, size):
            records.extend(tracked.joiner.flush())
            out = self._wrap(tracked, records)
            self._find_copy(tracked)
            tracked.stream = stream_token()
            tracked.read_offset = tracked.committed = 0
            tracked.buffer.clear()
            tracked.tail = b""
            tracked.fingerprint, tracked.fp_len = None, 0
            tracked.persisted = False
            tracked.size = size
            return out + self._read(tracked, now)
        tracked.size = size
        if tracked.fingerprint is None:
            fp = fingerprint(tracked.fd)
            if fp is None:
                return []
            tracked.fingerprint, tracked.fp_len = fp
        # A bounded amount per poll: a large backlog is shipped in steps, not loaded at once.
        budget = MAX_READ_PER_POLL
        while tracked.read_offset < size and budget > 0:
            want = min(READ_CHUNK, size - tracked.read_offset)
            budget -= want
            data = os.pread(tracked.fd, want, tracked.read_offset)
            if not data:
                break
            records.extend(self._split(tracked, data, now))  # offsets from before this read
            tracked.read_offset += len(data)
        records.extend(tracked.joiner.flush_if_idle(now))
        at_rest = (
            tracked.orphan_since is not None
            and not tracked.draining
            and tracked.read_offset >= size
            and now - tracked.orphan_since >= self.rotate_wait
        )
        if at_rest:
            # Rotated away and quiet: the partial last line will never be completed.
            if tracked.buffer:
                start = tracked.line_start
                text = bytes(tracked.buffer).decode("utf-8", "replace").rstrip("\r")
                tracked.buffer.clear()
                records.extend(tracked.joiner.feed(Line(start, tracked.read_offset, text), now))
            records.extend(tracked.joiner.flush())
            tracked.draining = True
        return self._wrap(tracked, records)

    def _split(self, tracked: TrackedFile, data: bytes, now: float) -> list[Record]:
        buffer = tracked.buffer
        base = tracked.line_start
        buffer.extend(data)
        records: list[Record] = []
        position = 0
        while True:
            newline = buffer.find(b"\n", position)
            if newline < 0:
                if len(buffer) - position <= MAX_LINE_BYTES:
                    break
                newline = position + MAX_LINE_BYTES - 1  # an endless line: cut it
            raw = bytes(buffer[position:newline])
            text = raw.decode("utf-8", "replace").rstrip("\r")
            end = newline + 1
            records.extend(tracked.joiner.feed(Line(base + position, base + end, text), now))
            self.lines_read += 1
            position = end
        if position:
            consumed = bytes(buffer[:position])
            tracked.tail = (tracked.tail + consumed)[-TAIL_BYTES:]
            del buffer[:position]
        return records

    @staticmethod
    def _wrap(tracked: TrackedFile, records: list[Record]) -> list[ShipRecord]:
        tracked.inflight += len(records)
        return [
            ShipRecord(tracked.key, tracked.stream, tracked.path, r.start, r.end, r.text)
            for r in records
        ]

    # -- acknowledgement and state ------------------------------------------------------

    def acknowledge(self, records: Iterable[ShipRecord]) -> None:
        for record in records:
            tracked = self.files.get(record.key)
            if tracked is None:
                continue
            tracked.inflight -= 1
            if record.stream == tracked.stream and record.end > tracked.committed:
                tracked.committed = record.end

    def needs_persist(self) -> bool:
        """A stream whose token is not in the checkpoint yet must be saved before it is sent."""
        return any(
            not t.persisted and t.fingerprint is not None and t.copy_of is None
            for t in self.files.values()
        )

    def states(self) -> list[StreamState]:
        states = []
        for tracked in self.files.values():
            if tracked.fingerprint is None or tracked.copy_of is not None:
                continue
            states.append(tracked.state())
        return states

    def mark_persisted(self) -> None:
        for tracked in self.files.values():
            if tracked.fingerprint is not None:
                tracked.persisted = True

    def backlog_bytes(self) -> int:
        return sum(max(0, t.size - t.committed) for t in self.files.values() if t.copy_of is None)

    def _forget(self, tracked: TrackedFile) -> None:
        os.close(tracked.fd)
        del self.files[tracked.key]

    def close(self) -> None:
        for tracked in list(self.files.values()):
            self._forget(tracked)
