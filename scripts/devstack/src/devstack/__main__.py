"""``devstack up|down|status|install``: the local stack's one entry point."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from types import ModuleType

from devstack import (
    chromium,
    jaeger,
    kafka,
    kustomize,
    mongo,
    paths,
    postgres,
    process,
    redis,
    services,
)
from devstack.process import StackError
from logriver_common.auth import DEV_KEY

# Start order: storage first, then the broker, then telemetry.
PARTS: list[tuple[str, ModuleType]] = [
    ("postgres", postgres),
    ("redis", redis),
    ("mongodb", mongo),
    ("kafka", kafka),
    ("jaeger", jaeger),
]
# Installed only, never started: kustomize renders deploy/k8s in the deploy tests;
# chromium runs the query console's browser test.
TOOLS: list[tuple[str, ModuleType]] = [("kustomize", kustomize), ("chromium", chromium)]


def install() -> None:
    for name, part in [*PARTS, *TOOLS]:
        started = time.monotonic()
        part.install()
        print(f"  installed {name:<9} ({time.monotonic() - started:.1f}s)", flush=True)


def up(with_services: bool) -> None:
    # Jaeger is off the critical path: jaeger.start() builds it in the background when
    # its binary is missing, and starts it once built (see devstack/jaeger.py).
    for name, part in [*PARTS, *TOOLS]:
        if part is jaeger:
            continue
        started = time.monotonic()
        part.install()
        print(f"  installed {name:<9} ({time.monotonic() - started:.1f}s)", flush=True)
    for name, part in PARTS:
        started = time.monotonic()
        outcome = part.start()
        what = "started" if outcome in (None, "running") else outcome
        print(f"  {name:<9} {what} ({time.monotonic() - started:.1f}s)", flush=True)
    if with_services:
        started = time.monotonic()
        services.start()
        print(f"  started   services  ({time.monotonic() - started:.1f}s)", flush=True)
    status()


def down() -> None:
    services.stop()
    for name, part in reversed(PARTS):
        if part.stop():
            print(f"  stopped {name}")
    left = process.leftovers()
    if left:
        raise StackError("down", f"processes still running: {left}")
    print("  nothing of the stack is running")


def status() -> None:
    print(f"\nlogriver local stack (state in {paths.state_dir()}, logs in {paths.log_dir()})")
    rows = [
        ("postgres", postgres.NAME, postgres.dsn()),
        ("redis", redis.NAME, f"redis://127.0.0.1:{redis.PORT}/0"),
        ("kafka", kafka.NAME, f"127.0.0.1:{kafka.PORT} (topics: {', '.join(kafka.TOPICS)})"),
    ]
    for label, pid_name, where in rows:
        pid = process.read_pid(pid_name)
        print(f"  {label:<9} {'pid ' + str(pid) if pid else 'stopped':<11} {where}")
    jaeger_state = jaeger.describe()
    pid = process.read_pid(jaeger.NAME) or process.read_pid(jaeger.BUILDER)
    shown = f"pid {pid}" if jaeger_state == "running" else jaeger_state
    where = f"API {jaeger.QUERY_URL}/api (no UI)  OTLP grpc 127.0.0.1:4317 http :4318"
    if jaeger_state in ("building", "build failed"):
        where += f"  (go build; log {paths.log_file(jaeger.BUILDER)})"
    print(f"  {'jaeger':<9} {shown:<11} {where}")
    pids = [process.read_pid(f"mongod-{p}") for p in mongo.PORTS]
    running = [str(p) for p in pids if p]
    state = f"pids {','.join(running)}" if running else "stopped"
    print(f"  {'mongodb':<9} {state:<11} {mongo.describe() if running else ''}")
    for service in services.SERVICES:
        pid = process.read_pid(service.name)
        where = f"{service.url:<23} {service.what}"
        health = services.describe(service) if pid else ""
        print(f"  {service.name:<9} {'pid ' + str(pid) if pid else 'stopped':<11} {where} {health}")
    if any(process.read_pid(service.name) for service in services.SERVICES):
        print(
            "\n  web console:  http://127.0.0.1:8001/   (search; live tail at /tail.html)"
            "\n  traces:       http://127.0.0.1:8001/trace.html?trace_id=<id>   (spans and logs;"
            "\n                the local Jaeger has no UI, only its API at :16686/api)"
            "\n  API key (local mode, all scopes; never valid in production):"
            f"\n    {DEV_KEY}"
            "\n  try it:"
            f"\n    curl -s 127.0.0.1:8000/v1/logs -H 'Authorization: Bearer {DEV_KEY}' \\"
            "\n      -H 'Content-Type: application/json' \\"
            """\n      -d '{"service":"hello","level":"error","message":"it works"}'"""
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up_cmd = sub.add_parser("up", help="install what is missing and start the stack")
    up_cmd.add_argument("--no-services", action="store_true", help="only the infrastructure")
    sub.add_parser("down", help="stop everything this stack started")
    sub.add_parser("status", help="what runs where")
    sub.add_parser("install", help="only install (download and build) the parts")
    args = parser.parse_args()
    # Readiness polling expects refused connections; aiokafka would log each one.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        if args.command == "up":
            up(with_services=not args.no_services)
        elif args.command == "down":
            down()
        elif args.command == "status":
            status()
        else:
            install()
    except StackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
