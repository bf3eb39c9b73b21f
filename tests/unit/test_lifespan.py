"""The one lifespan pattern: supervised tasks fail readiness; a failed start closes all it opened.

No network: every client is a fake that records whether it was opened and closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from logriver_common import clients
from logriver_common.lifespan import Supervisor
from logriver_common.settings import TelemetrySettings
from logriver_common.web.health import Readiness


async def _crash() -> str | None:
    await asyncio.sleep(0)
    raise RuntimeError("disk on fire")


async def _gives_up() -> str | None:
    await asyncio.sleep(0)
    return "dead-letter ratio 0.9 above 0.5"


async def _returns_early() -> str | None:
    await asyncio.sleep(0)
    return None


async def _forever() -> str | None:
    await asyncio.Event().wait()
    return None


@pytest.mark.parametrize(
    ("loop", "reason"),
    [
        (_crash, "consumer crashed: RuntimeError: disk on fire"),
        (_gives_up, "dead-letter ratio 0.9 above 0.5"),
        (_returns_early, "consumer exited before it was asked to stop"),
    ],
)
async def test_a_loop_that_ends_on_its_own_fails_readiness(
    loop: Callable[[], Any], reason: str
) -> None:
    readiness = Readiness()
    async with AsyncExitStack() as stack:
        task = Supervisor(stack, readiness).spawn("consumer", loop())
        await asyncio.wait({task})
        ready, report = await readiness.report()
        assert not ready
        assert report["consumer"] == {"status": "down", "error": reason}
        # Liveness fails (the orchestrator restarts the process) unless it stopped on purpose.
        on_purpose = loop is _gives_up
        assert readiness.broken == ({} if on_purpose else {"consumer": reason})


async def test_a_stopped_loop_drains_and_stays_ready() -> None:
    readiness = Readiness()
    stop = asyncio.Event()
    drained: list[bool] = []

    async def loop() -> str | None:
        await stop.wait()
        drained.append(True)
        return None

    async with AsyncExitStack() as stack:
        task = Supervisor(stack, readiness).spawn(
            "relay", loop(), stop=stop.set, drain_timeout_s=5.0
        )
    assert task.done()
    assert not task.cancelled()
    assert drained == [True]
    assert readiness.failures == {}


async def test_a_loop_that_does_not_drain_in_time_is_cancelled() -> None:
    readiness = Readiness()
    async with AsyncExitStack() as stack:
        task = Supervisor(stack, readiness).spawn(
            "writer", _forever(), stop=lambda: None, drain_timeout_s=0.01
        )
    assert task.cancelled()
    assert readiness.failures == {}


async def test_tasks_stop_before_the_clients_opened_before_them() -> None:
    order: list[str] = []

    async def close_client() -> None:
        order.append("client closed")

    async def loop() -> str | None:
        try:
            await asyncio.Event().wait()
        finally:
            order.append("task stopped")
        return None

    async with AsyncExitStack() as stack:
        stack.push_async_callback(close_client)
        Supervisor(stack, Readiness()).spawn("loop", loop())
        await asyncio.sleep(0)
    assert order == ["task stopped", "client closed"]


# -- a failed start closes everything it opened (the alerter: the most clients) ---------------


class Recorder:
    """Every fake client notes its open and close here."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.closed: list[str] = []


class FakeClient:
    def __init__(self, name: str, rec: Recorder, *, fail_start: bool = False) -> None:
        self.name, self.rec, self.fail_start = name, rec, fail_start

    async def start(self) -> None:
        if self.fail_start:
            raise ConnectionError(f"{self.name}: broker unreachable")
        self.rec.opened.append(self.name)

    async def stop(self) -> None:
        self.rec.closed.append(self.name)

    async def close(self) -> None:
        self.rec.closed.append(self.name)

    def __getitem__(self, _: str) -> FakeClient:
        return self


def _fake_clients(
    monkeypatch: pytest.MonkeyPatch, rec: Recorder, *, failing: str
) -> type[httpx.AsyncClient]:
    async def pool(_: object) -> FakeClient:
        rec.opened.append("postgres")
        return FakeClient("postgres", rec)

    def mongo(_: object, **__: object) -> FakeClient:
        rec.opened.append("mongodb")
        return FakeClient("mongodb", rec)

    monkeypatch.setattr(clients, "postgres_pool", pool)
    monkeypatch.setattr(clients, "mongo_client", mongo)
    monkeypatch.setattr(
        clients,
        "kafka_producer",
        lambda *_, **__: FakeClient("producer", rec, fail_start=failing == "producer"),
    )
    monkeypatch.setattr(
        clients,
        "kafka_consumer",
        lambda *_, **__: FakeClient("consumer", rec, fail_start=failing == "consumer"),
    )

    class Http(httpx.AsyncClient):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            rec.opened.append("http")

        async def aclose(self) -> None:
            rec.closed.append("http")
            await super().aclose()

    return Http


def _migrate(failing: str) -> Callable[[object], Any]:
    async def migrate(_: object) -> list[int]:
        if failing == "migration":
            raise RuntimeError("migration 7 failed")
        return []

    return migrate


class FakeKeys:
    def __init__(self, *_: object) -> None:
        pass

    async def prepare(self, *, local_mode: bool) -> None:
        return None


class FakeEvaluator:
    def __init__(self, *_: object) -> None:
        pass

    async def refresh(self) -> None:
        return None


@pytest.mark.parametrize(
    ("failing", "opened"),
    [
        ("migration", ["postgres", "mongodb", "http"]),
        ("producer", ["postgres", "mongodb", "http"]),
        ("consumer", ["postgres", "mongodb", "http", "producer"]),
    ],
)
async def test_alerter_failed_start_closes_every_client_it_opened(
    monkeypatch: pytest.MonkeyPatch, failing: str, opened: list[str]
) -> None:
    from logriver_alerter import app as alerter_app
    from logriver_alerter.settings import AlerterSettings

    rec = Recorder()
    http = _fake_clients(monkeypatch, rec, failing=failing)
    monkeypatch.setattr(alerter_app, "httpx", SimpleNamespace(AsyncClient=http))
    monkeypatch.setattr(alerter_app, "migrate", _migrate(failing))
    monkeypatch.setattr(alerter_app, "postgres_repositories", lambda _pool: None)
    monkeypatch.setattr(alerter_app, "ApiKeyStore", FakeKeys)
    monkeypatch.setattr(alerter_app, "Evaluator", FakeEvaluator)
    app: FastAPI = alerter_app.create_app(
        AlerterSettings(telemetry=TelemetrySettings(enabled=False))
    )
    with pytest.raises((RuntimeError, ConnectionError)):
        async with app.router.lifespan_context(app):
            pytest.fail("the start should have failed")
    assert rec.opened == opened
    assert sorted(rec.closed) == sorted(opened)
    assert rec.closed == list(reversed(opened))


async def test_writer_failed_start_closes_mongo_and_producer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from logriver_writer import app as writer_app
    from logriver_writer.settings import WriterSettings

    rec = Recorder()
    _fake_clients(monkeypatch, rec, failing="none")

    async def indexes_fail(_: object) -> None:
        raise RuntimeError("createIndexes refused")

    monkeypatch.setattr(writer_app, "ensure_log_indexes", indexes_fail)
    app: FastAPI = writer_app.create_app(WriterSettings(telemetry=TelemetrySettings(enabled=False)))
    with pytest.raises(RuntimeError, match="createIndexes"):
        async with app.router.lifespan_context(app):
            pytest.fail("the start should have failed")
    assert rec.opened == ["mongodb", "producer"]
    assert rec.closed == ["producer", "mongodb"]


def test_the_unit_tier_refuses_network_and_processes() -> None:
    """tests/unit/conftest.py: the rule `make unit` keeps, checked here once."""
    import os
    import socket
    import subprocess

    from tests.unit.conftest import TierViolation

    with pytest.raises(TierViolation), socket.socket() as sock:
        sock.connect(("127.0.0.1", 9))
    with pytest.raises(TierViolation), socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
    with pytest.raises(TierViolation):
        subprocess.run(["true"], check=False)
    with pytest.raises(TierViolation):
        os.fork()
    left, right = socket.socketpair()  # asyncio's wake-up pipe stays allowed
    left.close()
    right.close()
