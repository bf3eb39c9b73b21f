"""Jaeger v2, compiled from Jaeger's ``cmd/jaeger`` through the Go module proxy.

``go install pkg@version`` refuses modules whose go.mod has ``replace``
directives (Jaeger's does), so devstack downloads the pinned module into Go's
module cache and builds ``./cmd/jaeger`` inside it. The Jaeger repository tags
its v2 binary with the module's v1.x versions: v1.76.0 is Jaeger v2.13.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from devstack import paths, process
from devstack.process import StackError, run

MODULE = "github.com/jaegertracing/jaeger"
VERSION = "v1.76.0"
NAME = "jaeger"
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


def start() -> None:
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
    return process.stop(NAME)
