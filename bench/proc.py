"""What a process costs, from /proc: the benches' one way to count CPU and memory.

CPU time (utime + stime) holds on a noisy machine where rates do not, so every
bench reports cost as CPU seconds of a process between two reads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def py_spy_record(*, rate: int) -> list[str]:
    """The command that samples a process (``--pid``, ``--output`` to add) without pausing
    it, in collapsed stacks. py-spy is taken from this interpreter's environment: the
    bench may run outside ``uv run``, with the virtualenv's bin not on PATH."""
    py_spy = str(Path(sys.executable).parent / "py-spy")
    return [py_spy, "record", "--nonblocking", "--format", "raw", "--rate", str(rate)]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (0.0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """``cpu_seconds`` of a process and of the processes it started (running ones).

    A gateway with several workers is a supervisor and its children: its cost is
    theirs together.
    """
    return sum(cpu_seconds(p) for p in _tree(pid))


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc/<pid>/task/<tid>/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (0.0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
