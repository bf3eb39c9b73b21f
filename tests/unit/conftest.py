"""The unit tier touches no network and starts no process; this makes it a rule, not a habit.

Every unit test runs with ``subprocess.Popen`` and ``os.fork`` refused, and with
``socket.connect``/``bind`` refused for anything but a Unix socket (asyncio's
own wake-up pipe is a Unix socket pair). A test that needs either belongs in
tests/integration.
"""

from __future__ import annotations

import os
import socket
import subprocess
from typing import Any

import pytest


class TierViolation(AssertionError):
    pass


def _refuse(what: str) -> Any:
    def refuse(*_: object, **__: object) -> None:
        raise TierViolation(f"a unit test may not {what}; move it to tests/integration")

    return refuse


@pytest.fixture(autouse=True)
def _no_network_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect
    real_bind = socket.socket.bind

    def connect(self: socket.socket, address: Any) -> None:
        if self.family != socket.AF_UNIX:
            raise TierViolation(f"a unit test may not connect to {address!r}")
        real_connect(self, address)

    def bind(self: socket.socket, address: Any) -> None:
        if self.family != socket.AF_UNIX:
            raise TierViolation(f"a unit test may not listen on {address!r}")
        real_bind(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "bind", bind)
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("start a process"))
    monkeypatch.setattr(os, "fork", _refuse("fork"))
