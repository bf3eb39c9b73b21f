"""Headless Chromium from Debian, for the query console's browser test (Playwright drives it).

Installed only, never started. Playwright's own browser download (`playwright
install`) is not used: Debian's package is the one these machines can get and
keep updated.
"""

from __future__ import annotations

from devstack import apt

BINARY = "/usr/bin/chromium"


def install() -> None:
    apt.ensure("chromium", BINARY, ["chromium", "chromium-driver"])
