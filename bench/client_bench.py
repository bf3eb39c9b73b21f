"""How long does the app's ``logger.info(...)`` take with LogriverHandler attached?

Compared in one run with a ``NullHandler`` (the floor: logging's own cost) and a
``StreamHandler`` to a file (what most apps do today), with the gateway running
and with it down (the handler must not get slower when the network is gone).

    uv run python -m bench.client_bench [--calls 20000] [--rounds 7] [--url URL]

Without ``--url`` a gateway is started as a subprocess on a free port (the local
stack's Kafka, PostgreSQL and Redis must be up). Figures are medians over rounds
of the per-round mean and p99 of single calls timed with ``perf_counter_ns``.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.results import publish_figures
from logriver_client import LogriverHandler
from logriver_common.auth import DEV_KEY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gateway(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    port = free_port()
    env = {
        **os.environ,
        "LOGRIVER_INGEST_PORT": str(port),
        "LOGRIVER_INGEST_GRPC_PORT": "0",  # 4319 is the stack gateway's
        "LOGRIVER_OTEL_ENABLED": "false",
    }
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "logriver_ingest"], env=env, stdout=log, stderr=log
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(f"gateway did not start:\n{log.read().decode()[-2000:]}")
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            proc.wait(30)


def time_calls(logger: logging.Logger, calls: int) -> list[int]:
    samples = [0] * calls
    clock = time.perf_counter_ns
    for i in range(calls):
        started = clock()
        logger.info("order %s paid", i, extra={"order_id": i, "amount": 12.5})
        samples[i] = clock() - started
    return samples


def measure(
    make: Callable[[], logging.Handler], calls: int, rounds: int
) -> tuple[float, float, str]:
    means: list[float] = []
    p99s: list[float] = []
    handler = make()
    logger = logging.getLogger(f"bench.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        time_calls(logger, min(calls, 2000))  # warm-up
        for _ in range(rounds):
            samples = sorted(time_calls(logger, calls))
            means.append(statistics.fmean(samples) / 1000)
            p99s.append(samples[int(len(samples) * 0.99)] / 1000)
            if isinstance(handler, LogriverHandler):
                handler.flush(30)  # each round starts from an empty queue when it can
    finally:
        logger.removeHandler(handler)
        note = ""
        if isinstance(handler, LogriverHandler):
            handler.close(timeout=10)
            s = handler.stats()
            note = f"delivered {s.delivered}, dropped {s.dropped}, failed {s.failed}"
        else:
            handler.close()
    return statistics.median(means), statistics.median(p99s), note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--url", help="a running gateway (default: start one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, gateway(args.url) as url:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")

        def stream_handler() -> logging.Handler:
            handler = logging.StreamHandler(Path(tmp, "app.log").open("a"))  # noqa: SIM115
            handler.setFormatter(formatter)
            return handler

        down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        # A round logs in a tight loop, faster than any gateway takes it: size the queue to
        # hold a round so "gateway up" measures the call, not drop-oldest (down still drops).
        queue = max(10_000, args.calls)
        cases: list[tuple[str, Callable[[], logging.Handler]]] = [
            ("NullHandler", logging.NullHandler),
            ("StreamHandler (file)", stream_handler),
            ("LogriverHandler, gateway up",
             lambda: LogriverHandler(url, service="bench", api_key=DEV_KEY, queue_size=queue)),
            ("LogriverHandler, gateway down",
             lambda: LogriverHandler(down, service="bench", api_key=DEV_KEY, queue_size=queue)),
        ]  # fmt: skip
        rows = [(name, *measure(make, args.calls, args.rounds)) for name, make in cases]

    print(f"\nlogger.info() with one handler: {args.calls} calls x {args.rounds} rounds, "
          f"medians of per-round figures (microseconds)\n")  # fmt: skip
    print(f"{'handler':<32} {'mean us':>9} {'p99 us':>9}  notes")
    print("-" * 90)
    for name, mean, p99, note in rows:
        print(f"{name:<32} {mean:>9.2f} {p99:>9.2f}  {note}")
    figures = {
        f"{name} {what}": round(v, 2)
        for name, m, p, _ in rows
        for what, v in (("mean us", m), ("p99 us", p))
    }
    publish_figures("client", figures, notes="logger.info() cost per call, medians of rounds")


if __name__ == "__main__":
    main()
