"""The e2e suite runs over the full stack (`devstack up`: infrastructure and five services)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from tests.e2e.faults import all_ready, restore_stack


@pytest.fixture(scope="session")
async def pipeline() -> None:
    """Every service answers /readyz 200; start the stack with `devstack up` if it does not.

    A stack that is being restarted (by `make test` or another session) gets a minute to
    come up first, so this does not race a concurrent `devstack up`.
    """
    try:
        await all_ready(within=60)
    except AssertionError:
        await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "devstack", "up"], check=True, timeout=900
        )
        await all_ready(within=120)


@pytest.fixture
async def restored(pipeline: None) -> AsyncIterator[None]:
    """Whatever the test stops or kills is started again afterwards, even on failure."""
    try:
        yield
    finally:
        await asyncio.to_thread(restore_stack)
        await all_ready(within=180)
