"""Liveness, readiness and Prometheus metrics endpoints.

``/healthz`` says the process is alive: 503 only once a loop that should run for the
process's lifetime has ended on its own (a bug, or a failure its own handling missed),
so the orchestrator restarts the process and every loop rebuilds its state from Kafka
and the stores. ``/readyz`` runs every dependency check registered on
``app.state.readiness`` concurrently, each with a timeout, and reports status and
latency per dependency; it answers 503 if any is down or the service failed on its own.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

Check = Callable[[], Awaitable[Any]]
CHECK_TIMEOUT_S = 2.0

router = APIRouter(include_in_schema=False)


class Readiness:
    """Named dependency checks plus conditions a service can fail on its own."""

    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}
        self.failures: dict[str, str] = {}
        self.broken: dict[str, str] = {}  # failures only a restart repairs (see /healthz)

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def fail(self, name: str, reason: str, *, restart: bool = False) -> None:
        """Mark the service unready: a consumer that stopped on purpose (the dead-letter
        guard), or, with ``restart``, a loop that crashed: then liveness fails too."""
        self.failures[name] = reason
        if restart:
            self.broken[name] = reason

    def clear(self, name: str) -> None:
        self.failures.pop(name, None)

    async def report(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        names = list(self.checks)
        results = await asyncio.gather(*(_timed(self.checks[n]) for n in names))
        report = dict(zip(names, results, strict=True))
        for name, reason in self.failures.items():
            report[name] = {"status": "down", "error": reason}
        ready = all(r["status"] == "up" for r in report.values())
        return ready, report


async def _timed(check: Check) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await check()
    except TimeoutError:
        return {"status": "down", "error": f"timed out after {CHECK_TIMEOUT_S}s"}
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency means "down"
        return {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    readiness: Readiness | None = getattr(request.app.state, "readiness", None)
    if readiness is not None and readiness.broken:
        return JSONResponse({"status": "broken", "reasons": readiness.broken}, status_code=503)
    return JSONResponse({"status": "alive"})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    readiness: Readiness = request.app.state.readiness
    ready, checks = await readiness.report()
    return JSONResponse(
        {"status": "ready" if ready else "unready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics")
async def metrics() -> Response:
    return Response(_exposition(), media_type=CONTENT_TYPE_LATEST)


def _exposition() -> bytes:
    """This process's metrics, or with several workers (multiprocess mode) all of theirs."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory is None:
        return generate_latest()
    _forget_dead_workers(Path(directory))
    # A fresh registry per scrape: the collector reads every worker's files when collected.
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
    return generate_latest(registry)


def _forget_dead_workers(directory: Path) -> None:
    """Drop the live gauges of workers that died (uvicorn restarts them without telling us).

    Counters and histograms of a dead worker stay (totals must not go down); its
    ``livesum`` gauges, such as requests in flight, must not count any more.
    """
    for file in directory.glob("gauge_live*_*.db"):
        suffix = file.stem.rsplit("_", 1)[1]
        if not suffix.isdigit():
            continue  # not prometheus_client's (the directory may be an operator's)
        pid = int(suffix)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        except PermissionError:
            continue  # alive, owned by someone else
