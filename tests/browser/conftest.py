"""Headless Chromium (Debian's package, driven by Playwright) against real services."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def _launch(args: list[str]) -> AsyncIterator[Browser]:
    # `devstack install` puts it there (scripts/devstack/src/devstack/chromium.py).
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: run `uv run python -m devstack install`"
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async for chromium in _launch(ARGS):
        yield chromium
