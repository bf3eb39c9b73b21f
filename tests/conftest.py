"""Shared fixtures. Integration tests use the running local stack (``make up``) and
start it when it is not running; each test isolates itself with unique names."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

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
