"""The five logriver services, run from this checkout's workspace environment.

``up`` always restarts them so they run the code that is checked out now.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import partial

from devstack import process


@dataclass(frozen=True)
class Service:
    name: str
    module: str
    port: int
    what: str
    args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


SERVICES = [
    Service(
        "ingest", "logriver_ingest", 8000, "ingest gateway (POST /v1/logs; OTLP/gRPC on :4319)"
    ),
    Service("query", "logriver_query", 8001, "query API and web console"),
    Service("stream", "logriver_stream", 8002, "live tail (SSE /v1/stream, WS /v1/ws)"),
    Service("alerter", "logriver_alerter", 8003, "alerter admin API"),
    Service("writer", "logriver_writer", 8004, "writer (health and metrics)"),
    Service(
        "relay",
        "logriver_ingest",
        8005,
        "relay: logs.raw.v1 -> logs.v1 (health and metrics)",
        args=("relay",),
    ),
]


def start() -> None:
    for service in SERVICES:
        process.stop(service.name)
        _spawn(service)
    for service in SERVICES:
        _wait_ready(service)


def by_name(name: str) -> Service:
    for service in SERVICES:
        if service.name == name:
            return service
    raise ValueError(f"no service {name!r}; one of {[s.name for s in SERVICES]}")


def stop_one(name: str) -> bool:
    """Stop one service (SIGTERM, then SIGKILL); True if it was running."""
    return process.stop(by_name(name).name)


def start_one(name: str) -> None:
    """Start one service unless it runs, and wait until its /readyz answers 200."""
    service = by_name(name)
    if process.read_pid(service.name) is None:
        _spawn(service)
    _wait_ready(service)


def restart(name: str) -> None:
    """Stop and start one service, so it runs the current code (the others keep running)."""
    stop_one(name)
    start_one(name)


def _spawn(service: Service) -> None:
    process.spawn(
        service.name,
        [sys.executable, "-m", service.module, *service.args],
        env={"LOGRIVER_MODE": "local"},
    )


def _wait_ready(service: Service) -> None:
    process.wait_until(
        service.name,
        partial(_is_ready, service),
        timeout=60,
        pid_name=service.name,
    )


def _is_ready(service: Service) -> bool:
    return readiness(service)[0]


def readiness(service: Service) -> tuple[bool, str]:
    """(ready, body) from the service's /readyz."""
    try:
        with urllib.request.urlopen(f"{service.url}/readyz", timeout=3) as resp:  # noqa: S310
            return resp.status == 200, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return False, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return False, str(exc)


def describe(service: Service) -> str:
    ready, body = readiness(service)
    try:
        checks = json.loads(body).get("checks", {})
        deps = ", ".join(f"{k}={v.get('status')}" for k, v in checks.items())
    except (ValueError, AttributeError):
        deps = body[:80]
    return f"{'ready' if ready else 'NOT READY'} ({deps})"


def stop() -> bool:
    stopped = False
    for service in reversed(SERVICES):
        stopped = process.stop(service.name) or stopped
    return stopped
