"""Debian packages for the parts that come from the distribution (Redis, PostgreSQL)."""

from __future__ import annotations

import os
import shutil

from devstack.process import StackError, run

_updated = False


def ensure(part: str, binary: str, packages: list[str]) -> None:
    """Install ``packages`` unless ``binary`` is already there (on PATH or absolute)."""
    if os.path.isabs(binary) and os.path.exists(binary):
        return
    if not os.path.isabs(binary) and shutil.which(binary):
        return
    if os.geteuid() != 0 and not shutil.which("sudo"):
        raise StackError(part, f"{binary} is missing and apt-get needs root: install {packages}")
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    global _updated
    if not _updated:
        run(part, [*prefix, "apt-get", "update", "-q"])
        _updated = True
    run(
        part,
        [*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )
