"""The shipper's checkpoint: where each file stream was acknowledged up to.

A stream is one generation of one file: identified by device and inode plus a
fingerprint of its first line (inodes are reused after deletion; a truncated
file starts a new stream). Its random ``stream`` token is persisted *before*
the stream's first line is sent, because event ids are derived from it: after
a crash the same lines get the same ids and the pipeline stores them once.

Writes are atomic (temporary file, fsync, rename, fsync of the directory), so
a crash leaves either the old or the new checkpoint, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

VERSION = 1


@dataclass(frozen=True, slots=True)
class StreamState:
    stream: str
    path: str
    dev: int
    ino: int
    fingerprint: str | None
    offset: int  # every byte before this offset is acknowledged (or permanently rejected)


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


class CheckpointStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.writes = 0

    def load(self) -> list[StreamState]:
        try:
            raw = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return []
        if raw.get("version") != VERSION:
            raise ValueError(f"{self.path}: unsupported checkpoint version {raw.get('version')!r}")
        return [StreamState(**entry) for entry in raw["streams"]]

    def save(self, states: Iterable[StreamState]) -> None:
        body = {"version": VERSION, "streams": [asdict(s) for s in states]}
        write_atomically(self.path, json.dumps(body, indent=1).encode())
        self.writes += 1
