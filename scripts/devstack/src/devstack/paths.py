"""Where the stack keeps installs, data, PID files and logs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Installs (jars, mongod, jaeger binary): survive `down`, shared by all clones."""
    return Path(os.environ.get("LOGRIVER_CACHE_DIR", Path.home() / ".cache" / "logriver"))


def state_dir() -> Path:
    """Data directories, PID files and logs of the running stack."""
    return Path(os.environ.get("LOGRIVER_STATE_DIR", cache_dir() / "state"))


def run_dir() -> Path:
    path = state_dir() / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir() -> Path:
    path = state_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(part: str) -> Path:
    path = state_dir() / "data" / part
    path.mkdir(parents=True, exist_ok=True)
    return path


def pid_file(name: str) -> Path:
    return run_dir() / f"{name}.pid"


def log_file(name: str) -> Path:
    return log_dir() / f"{name}.log"


def resource(name: str) -> Path:
    return Path(__file__).parent / "resources" / name
