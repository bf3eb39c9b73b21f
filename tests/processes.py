"""Run a logriver service as a real subprocess, as a test needs it (own port, own config).

Crash, restart and SIGTERM tests need processes they can kill; the
``service_process`` fixture in ``tests/conftest.py`` cleans them up.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.stack import eventually

OUTPUT_DIR = Path(__file__).resolve().parent.parent / "test-output"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """One service (``ingest``, ``writer``, ...) started with ``python -m logriver_<name>``."""

    def __init__(
        self,
        name: str,
        env: Mapping[str, str] | None = None,
        tag: str = "",
        *,
        args: tuple[str, ...] = (),
        port_env: str | None = None,
    ) -> None:
        """``args`` pick a process of the service (``("relay",)``), ``port_env`` its port."""
        self.name = name
        self.args = args
        self.port = free_port()
        # The gateway's OTLP/gRPC listener gets a free port too (4319 is the stack's).
        self.grpc_port = free_port() if name == "ingest" else 0
        grpc = {"LOGRIVER_INGEST_GRPC_PORT": str(self.grpc_port)} if self.grpc_port else {}
        self.env = {
            **os.environ,
            **grpc,
            **(env or {}),
            port_env or f"LOGRIVER_{name.upper()}_PORT": str(self.port),
        }
        OUTPUT_DIR.mkdir(exist_ok=True)
        self.log_path = OUTPUT_DIR / f"{name}-{tag or self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"logriver_{self.name}", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own process group, so kill() reaches a gateway's worker processes too.
                start_new_session=True,
            )
        return self

    def wait_ready(self, within: float = 60.0) -> ServiceProcess:
        """Poll ``/readyz`` until 200; fail with the log tail if the process dies."""
        deadline = time.monotonic() + within
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                resp = httpx.get(f"{self.url}/readyz", timeout=2)
                if resp.status_code == 200:
                    return self
                last = resp.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready in {within}s ({last}):\n{self.tail()}")

    def kill(self) -> None:
        """kill -9 of the process and its workers: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def workers(self) -> list[int]:
        """Pids of its uvicorn workers (multiprocessing's spawned children): a zombie has
        no command line, and multiprocessing's resource tracker is not a worker."""
        return [pid for pid in self.children() if "spawn_main" in _cmdline(pid)]

    async def running_workers(self, count: int, *, dead: int = 0) -> list[int]:
        """The worker pids, once ``count`` of them run and ``dead`` is not among them."""

        async def started() -> list[int] | None:
            workers = self.workers()
            return workers if len(workers) == count and dead not in workers else None

        return await eventually(started, within=60, what=f"{count} {self.name} workers")

    def children(self) -> list[int]:
        """Pids of the processes this one started (a gateway's workers, say)."""
        if self.proc is None:
            return []
        task = Path(f"/proc/{self.proc.pid}/task")
        try:
            return [
                int(pid) for t in task.iterdir() for pid in (t / "children").read_text().split()
            ]
        except FileNotFoundError:
            return []

    def terminate(self, within: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (raises if it does not exit in time)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=within)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""
