"""Jaeger off the critical path: a missing binary is built in the background, once."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from devstack import jaeger, paths, process


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LOGRIVER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda _: "/usr/bin/go")
    return tmp_path


def test_a_missing_binary_is_built_in_the_background_once(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[tuple[str, Sequence[str]]] = []

    def spawn(name: str, argv: Sequence[str], **_: Any) -> int:
        spawned.append((name, list(argv)))
        # This test's own process stands in for the builder: it is alive.
        paths.pid_file(name).write_text(f"{os.getpid()}\n")
        return os.getpid()

    monkeypatch.setattr(process, "spawn", spawn)
    assert jaeger.describe() == "stopped"
    outcome = jaeger.start()
    assert outcome.startswith("building in the background")
    assert spawned == [
        (jaeger.BUILDER, ["nice", "-n", "10", sys.executable, "-m", "devstack.jaeger"])
    ]
    assert jaeger.describe() == "building"
    # A second `make up` while it builds starts no second build.
    assert jaeger.start().startswith("building")
    assert len(spawned) == 1


def test_a_built_binary_starts_in_the_foreground(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = cache / f"jaeger-{jaeger.VERSION}" / "jaeger"
    binary.parent.mkdir(parents=True)
    binary.write_text("")
    # A builder that has exited (no such pid) does not count as building.
    paths.pid_file(jaeger.BUILDER).write_text("999999999\n")
    started: list[bool] = []
    monkeypatch.setattr(jaeger, "_start_binary", lambda: started.append(True))
    assert jaeger.describe() == "stopped"
    assert jaeger.start() == "running"
    assert started == [True]


def test_without_go_it_says_so(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(process.StackError, match="needs Go"):
        jaeger.start()


def test_a_failed_build_is_reported(cache: Path) -> None:
    # The builder ran (its PID file is there), exited, and left no binary.
    paths.pid_file(jaeger.BUILDER).write_text("999999999\n")
    assert jaeger.describe() == "build failed"
