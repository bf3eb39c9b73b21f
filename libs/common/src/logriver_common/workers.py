"""Serving a service in one or several worker processes.

Kept apart from ``app`` on purpose: with several workers this process is only
uvicorn's supervisor, and importing the app's modules (FastAPI, the clients,
OpenTelemetry) cost it 55 MB it never used (100 MB resident against 45). The workers import the
app themselves.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from functools import partial
from pathlib import Path

import uvicorn

from logriver_common.http_protocol import CoalescingHttpToolsProtocol
from logriver_common.service_logging import configure_logging
from logriver_common.settings import ServiceSettings


def run_workers(factory: str, settings: ServiceSettings, *, name: str, workers: int) -> None:
    """Serve the app ``factory`` (``"module:function"``) builds, in ``workers`` processes.

    With one worker this process serves, as ``run_service`` does. With more,
    uvicorn's supervisor binds the port and spawns the workers; each imports and calls
    the factory, so each opens its own clients, and the kernel spreads connections
    over them. A worker that dies is restarted; SIGTERM stops them all gracefully.

    Each worker's Prometheus metrics go to files in one directory
    (prometheus_client's multiprocess mode, read by ``/metrics``): the variable must
    be set before the workers import prometheus_client, and the directory must be
    empty at start, or a previous run's counts would be added in. An operator's
    ``PROMETHEUS_MULTIPROC_DIR`` is used (its ``*.db`` files removed); otherwise a
    temporary one.
    """
    configure_logging(name, settings.log_level)
    serve = partial(
        uvicorn.run,
        factory,
        factory=True,
        workers=workers,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=10,
        http=CoalescingHttpToolsProtocol,
    )
    if workers == 1:
        serve()
        return
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    metrics_dir = given or tempfile.mkdtemp(prefix=f"logriver-{name}-metrics-")
    if given:
        # Only prometheus_client's own files: the directory may hold anything else.
        os.makedirs(given, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        serve()
    finally:
        if not given:
            shutil.rmtree(metrics_dir, ignore_errors=True)
