"""``/metrics`` in multiprocess mode drops the live gauges of dead workers, and only theirs."""

from __future__ import annotations

import os
from pathlib import Path

from logriver_common.web.health import _forget_dead_workers


def _dead_pid() -> int:
    """A pid no process has: pids are below the kernel's pid_max."""
    return int(Path("/proc/sys/kernel/pid_max").read_text())


def test_a_dead_workers_gauges_go_and_everything_else_stays(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    files = {
        "dead gauge": tmp_path / f"gauge_livesum_{dead}.db",
        "live gauge": tmp_path / f"gauge_livesum_{alive}.db",
        "dead counter": tmp_path / f"counter_{dead}.db",  # totals must not go down
        "stray": tmp_path / "gauge_livesum_backup.db",  # not a pid: not ours to judge
    }
    for file in files.values():
        file.write_bytes(b"")
    _forget_dead_workers(tmp_path)
    assert not files["dead gauge"].exists()
    assert files["live gauge"].exists()
    assert files["dead counter"].exists()
    assert files["stray"].exists()
