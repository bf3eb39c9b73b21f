"""Shared fixtures. Integration tests use the running local stack (``make up``) and
start it when it is not running; each test isolates itself with unique names."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping

import pytest

from tests.processes import ServiceProcess
from tests.stack import STACK, stack_is_up


@pytest.fixture(scope="session")
def stack() -> None:
    """The real local stack: Kafka, MongoDB rs0, Redis, PostgreSQL, Jaeger."""
    if not stack_is_up():
        subprocess.run(
            [sys.executable, "-m", "devstack", "up", "--no-services"], check=True, timeout=900
        )
    assert stack_is_up(), f"the local stack is not reachable: {STACK}"


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, database and service names."""
    return uuid.uuid4().hex[:10]


StartService = Callable[..., ServiceProcess]


@pytest.fixture
def service_process(stack: None, unique: str) -> Iterator[StartService]:
    """Start services as subprocesses: ``service_process("writer", env={...})``.

    Returns a ready process; every process is killed when the test ends.
    """
    started: list[ServiceProcess] = []

    def start(
        name: str, env: Mapping[str, str] | None = None, *, wait: bool = True
    ) -> ServiceProcess:
        proc = ServiceProcess(name, env, tag=f"{unique}-{len(started)}").start()
        started.append(proc)
        return proc.wait_ready() if wait else proc

    yield start
    for proc in started:
        proc.kill()
