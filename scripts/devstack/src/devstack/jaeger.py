"""Jaeger v2, compiled from Jaeger's ``cmd/jaeger`` through the Go module proxy.

``go install pkg@version`` refuses modules whose go.mod has ``replace``
directives (Jaeger's does), so devstack downloads the pinned module into Go's
module cache and builds ``./cmd/jaeger`` inside it. The Jaeger repository tags
its v2 binary with the module's v1.x versions: v1.76.0 is Jaeger v2.13.

Compiling it takes minutes on a cold cache, more than the rest of a cold ``make up``,
so ``up`` never waits for it: when the binary is missing, :func:`start` spawns a
background builder (``python -m devstack.jaeger``, PID file ``jaeger-build``) that
builds the binary and then starts Jaeger, while the rest of the stack and the
services start. The services' OTLP exporters retry, so traces flow once Jaeger is up;
``devstack status`` says "building" meanwhile, and tests that read traces poll for it.

This Jaeger has its query API but no UI (the UI's assets are not part of the Go
module): traces are read in the console's trace page instead.
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from devstack import paths, process
from devstack.process import StackError, run

MODULE = "github.com/jaegertracing/jaeger"
VERSION = "v1.76.0"
NAME = "jaeger"
BUILDER = "jaeger-build"
QUERY_URL = "http://127.0.0.1:16686"


def _binary() -> Path:
    return paths.cache_dir() / f"jaeger-{VERSION}" / "jaeger"


def install() -> None:
    target = _binary()
    if target.exists():
        return
    if not shutil.which("go"):
        raise StackError(NAME, "needs Go on PATH to build Jaeger from the Go module proxy")
    info = json.loads(run(NAME, ["go", "mod", "download", "-json", f"{MODULE}@{VERSION}"]))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    run(
        NAME,
        ["go", "build", "-o", str(partial), "./cmd/jaeger"],
        cwd=Path(info["Dir"]),
        env={"GOFLAGS": "-buildvcs=false"},
    )
    partial.rename(target)


def built() -> bool:
    return _binary().exists()


def building() -> bool:
    return process.read_pid(BUILDER) is not None


def start() -> str:
    """Start Jaeger, or its background build when the binary is missing; says which."""
    if process.read_pid(NAME) is not None:
        return "running"
    if not built():
        if not building():
            if not shutil.which("go"):
                raise StackError(NAME, "needs Go on PATH to build Jaeger from the Go module proxy")
            # Niced: the services starting meanwhile come first on a small machine.
            process.spawn(BUILDER, ["nice", "-n", "10", sys.executable, "-m", "devstack.jaeger"])
        return f"building in the background (log: {paths.log_file(BUILDER)})"
    _start_binary()
    return "running"


def _start_binary() -> None:
    if process.read_pid(NAME) is None:
        if process.port_open(16686) or process.port_open(4317):
            raise StackError(
                NAME, "ports 4317/16686 are taken by a process this stack did not start"
            )
        process.spawn(NAME, [str(_binary()), "--config", str(paths.resource("jaeger.yaml"))])
    process.wait_until(NAME, _ready, timeout=60, pid_name=NAME)


def _ready() -> bool:
    try:
        with urllib.request.urlopen(f"{QUERY_URL}/api/services", timeout=1) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stop() -> bool:
    builder = process.stop(BUILDER)
    return process.stop(NAME) or builder


def describe() -> str:
    """The status line's state: running, building, or stopped."""
    if process.read_pid(NAME) is not None:
        return "running"
    if building():
        return "building"
    if not built() and paths.pid_file(BUILDER).exists():
        return "build failed"  # the builder ran and exited without a binary: see its log
    return "stopped"


def _build_then_start() -> None:
    """The background builder's work (its log is jaeger-build.log)."""
    try:
        install()
        _start_binary()
    except StackError as exc:
        print(f"devstack: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    print("jaeger built and started", flush=True)


if __name__ == "__main__":
    _build_then_start()
