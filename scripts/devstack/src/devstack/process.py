"""Start, find and stop the stack's background processes by PID file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from devstack import paths


class StackError(RuntimeError):
    """A part failed to install or start; the message names the part and its log."""

    def __init__(self, part: str, problem: str, log: Path | None = None) -> None:
        where = f" (see {log})" if log else ""
        super().__init__(f"[{part}] {problem}{where}")


def read_pid(name: str) -> int | None:
    try:
        pid = int(paths.pid_file(name).read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    with contextlib.suppress(FileNotFoundError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> int:
    """Start ``argv`` detached in its own session, logging to the part's log file."""
    log = paths.log_file(name)
    full_env = {**os.environ, **(env or {})}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            user=user,
        )
    paths.pid_file(name).write_text(f"{proc.pid}\n")
    return proc.pid


def stop(name: str, *, timeout: float = 20.0, stop_signal: signal.Signals = signal.SIGTERM) -> bool:
    """Signal the process group, then SIGKILL after ``timeout``. True if something ran."""
    pid = read_pid(name)
    paths.pid_file(name).unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, stop_signal)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def wait_until(
    part: str,
    ready: Callable[[], bool],
    *,
    timeout: float,
    pid_name: str | None = None,
    interval: float = 0.25,
) -> None:
    """Poll ``ready`` until it is true; fail early if the process died."""
    deadline = time.monotonic() + timeout
    name = pid_name or part
    while time.monotonic() < deadline:
        if ready():
            return
        if pid_name is not None and read_pid(name) is None:
            raise StackError(part, "process exited during start-up", paths.log_file(name))
        time.sleep(interval)
    raise StackError(part, f"not ready after {timeout:.0f}s", paths.log_file(name))


def run(
    part: str,
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
) -> str:
    """Run a set-up command to completion; raise a StackError naming the part on failure."""
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        user=user,
    )
    if result.returncode != 0:
        log = paths.log_file(f"{part}-setup")
        log.write_text(f"$ {' '.join(argv)}\n{result.stdout}\n{result.stderr}")
        raise StackError(part, f"`{argv[0]}` exited with {result.returncode}", log)
    return str(result.stdout)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def leftovers() -> dict[str, int]:
    """PID files whose process still runs (after ``down`` this must be empty)."""
    found = {}
    for pid_path in paths.run_dir().glob("*.pid"):
        pid = read_pid(pid_path.stem)
        if pid is not None:
            found[pid_path.stem] = pid
    return found
