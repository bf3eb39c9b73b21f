"""The Dockerfile's builder stage replayed without Docker, then every service started.

There is no Docker engine here, so the replay does what the builder stage does:
copy exactly the files its COPY lines name into a clean directory, run its RUN
lines (uv) with its ENV, into a fresh virtualenv (``UV_PROJECT_ENVIRONMENT``),
then start the service from that virtualenv with ``python -m logriver_<svc>``
and probe it with the image's own healthcheck script. uv runs with
``UV_OFFLINE=1``: the wheels come from uv's cache (filled by the workspace's own
``uv sync``), so the test needs no network, and an unlocked dependency fails.
(Moved out of tests/unit: it starts processes and needs the local stack.)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from tests.processes import free_port
from tests.stack import STACK
from tests.unit.deploy import dockerfile, envvars
from tests.unit.deploy.conftest import ROOT
from tests.unit.deploy.test_dockerfile import _dockerignore, _ignored, _stages

pytestmark = [pytest.mark.integration]


def _copy_tree(source: Path, dest: Path) -> None:
    patterns = _dockerignore()
    if source.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
        return

    def ignore(directory: str, names: list[str]) -> list[str]:
        rel = Path(directory).relative_to(ROOT)
        return [n for n in names if _ignored(str(rel / n), patterns)]

    shutil.copytree(source, dest, ignore=ignore)


def _builder_env(venv: Path, *, compile_bytecode: bool) -> dict[str, str]:
    builder = _stages()["builder"]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UV_", "LOGRIVER_")) and k != "VIRTUAL_ENV"
    }
    env.update(builder.env())
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)  # /app/.venv in the image
    env["UV_OFFLINE"] = "1"  # no network at test time: wheels from uv's cache
    if not compile_bytecode:
        # Byte-compiling the whole venv costs seconds per sync on two shared cores;
        # the first service runs with the Dockerfile's UV_COMPILE_BYTECODE=1 as is.
        env["UV_COMPILE_BYTECODE"] = "0"
    return env


def _build(service: str, workdir: Path, venv: Path, *, compile_bytecode: bool) -> None:
    """Replay the builder stage for ``service``: COPY into ``workdir``, RUN there."""
    builder = _stages()["builder"]
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    args = {"SERVICE": service}
    env = _builder_env(venv, compile_bytecode=compile_bytecode)
    for inst in builder.instructions:
        if inst.keyword == "COPY":
            copy = dockerfile.parse_copy(inst)
            if copy.from_stage is not None:
                continue  # the uv binary: here it is the uv on PATH
            dest = dockerfile.substitute(copy.dest, args)
            assert not dest.startswith("/"), "COPY destinations are relative to WORKDIR"
            for source in copy.sources:
                src = ROOT / dockerfile.substitute(source, args)
                target = workdir / (src.name if dest.endswith("/") else dest)
                _copy_tree(src, target)
        elif inst.keyword == "RUN":
            command = dockerfile.substitute(dockerfile.run_command(inst), args)
            result = subprocess.run(
                ["bash", "-ec", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"


async def _kafka_topics(create: list[str] | None, delete: list[str] | None) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=STACK.kafka)
    await admin.start()
    try:
        if create:
            await admin.create_topics(
                [NewTopic(t, num_partitions=1, replication_factor=1) for t in create]
            )
            # Creation is asynchronous: wait until the metadata lists every partition.
            deadline = time.monotonic() + 20
            while True:
                described = await admin.describe_topics(create)
                if all(d["error_code"] == 0 and d["partitions"] for d in described):
                    break
                assert time.monotonic() < deadline, f"topics not ready: {described}"
                await asyncio.sleep(0.2)
        if delete:
            await admin.delete_topics(delete)
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def isolation(stack: None) -> Iterator[dict[str, str]]:
    """Environment that keeps the started services off the shared pipeline's
    topics, consumer groups and database on the local stack."""
    unique = uuid.uuid4().hex[:10]
    env = {
        "LOGRIVER_KAFKA_TOPIC": f"test.deploy.{unique}",
        "LOGRIVER_KAFKA_DLQ_TOPIC": f"test.deploy.{unique}.dlq",
        "LOGRIVER_KAFKA_RAW_TOPIC": f"test.deploy.{unique}.raw",
        "LOGRIVER_MONGO_DATABASE": f"test_deploy_{unique}",
        "LOGRIVER_OTEL_ENABLED": "false",
    }
    topics = [
        env["LOGRIVER_KAFKA_TOPIC"],
        env["LOGRIVER_KAFKA_DLQ_TOPIC"],
        env["LOGRIVER_KAFKA_RAW_TOPIC"],
    ]
    asyncio.run(_kafka_topics(create=topics, delete=None))
    yield env
    asyncio.run(_kafka_topics(create=None, delete=topics))
    client: MongoClient[dict[str, object]] = MongoClient(STACK.mongo_uri)
    try:
        client.drop_database(env["LOGRIVER_MONGO_DATABASE"])
    finally:
        client.close()


def _start_from_venv(
    service: str, venv: Path, env: dict[str, str], cwd: Path, *args: str
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """``python -m logriver_<service> [args]``; ``relay`` binds LOGRIVER_INGEST_RELAY_PORT."""
    port = free_port()
    prefix = f"LOGRIVER_{service.upper()}_"
    unique = uuid.uuid4().hex[:8]
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LOGRIVER_", "UV_"))}
    full.pop("VIRTUAL_ENV", None)
    full.pop("PYTHONPATH", None)
    full.update(env)
    full[f"{prefix}PORT"] = str(port if not args else free_port())
    if service == "ingest":
        # The OTLP/gRPC listener (default 4319) must not collide with the stack's gateway.
        full[f"{prefix}GRPC_PORT"] = str(free_port())
    if args == ("relay",):
        full[f"{prefix}RELAY_PORT"] = str(port)
    full[f"{prefix}HOST"] = "127.0.0.1"
    # Consumer groups are derived from the code, so new consumers are isolated too.
    for name in envvars.service_env(service):
        if name.endswith("_GROUP_ID"):
            full[name] = f"test-deploy-{service}-{unique}"
    log = cwd / f"{service}{''.join('-' + a for a in args)}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(venv / "bin" / "python"), "-m", f"logriver_{service}", *args],
            cwd=cwd,  # not the checkout: the code must come from the venv
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return proc, port, log


def _wait(
    proc: subprocess.Popen[bytes], url: str, log: Path, expect: set[int], within: float
) -> httpx.Response:
    deadline = time.monotonic() + within
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            resp = httpx.get(url, timeout=3)
            if resp.status_code in expect:
                return resp
            last = f"{resp.status_code} {resp.text[:500]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.25)
    raise AssertionError(f"{url}: no {expect} in {within}s ({last}):\n{log.read_text()[-3000:]}")


def _run_and_probe(
    service: str, venv: Path, env: dict[str, str], run_dir: Path, args: tuple[str, ...]
) -> None:
    proc, port, log = _start_from_venv(service, venv, env, run_dir, *args)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(proc, f"{base}/healthz", log, {200}, within=30)
        # The image's HEALTHCHECK script agrees.
        check = subprocess.run(
            [sys.executable, str(ROOT / "deploy/docker/healthcheck.py")],
            env={
                "APP_SERVICE": service,
                f"LOGRIVER_{service.upper()}_PORT": str(port),  # what the probe reads
                "PATH": os.environ["PATH"],
            },
            capture_output=True,
            timeout=10,
            check=False,
        )
        assert check.returncode == 0, check.stderr
        ready = _wait(proc, f"{base}/readyz", log, {200}, within=30)
        assert ready.json()["status"] == "ready"
        assert all(c["status"] == "up" for c in ready.json()["checks"].values())
        metrics = httpx.get(f"{base}/metrics", timeout=3)
        assert metrics.status_code == 200
        assert "# TYPE" in metrics.text
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
            raise
    # uvicorn finishes its shutdown, then re-raises SIGTERM: -15 is a clean exit.
    output = log.read_text()
    assert code in (0, -signal.SIGTERM), f"{service} exited {code}:\n{output[-3000:]}"
    assert "Application shutdown complete" in output, output[-3000:]


# Starting the services needs their dependencies: the local stack (the `stack`
# fixture starts it when it is not running, as for the integration tests).
@pytest.mark.integration
def test_builder_stage_installs_and_starts_every_service(
    tmp_path: Path, isolation: dict[str, str]
) -> None:
    """For each service: the Dockerfile's uv steps build a venv that runs it.

    One venv is shared (each service's sync replaces the previous one's
    packages, exactly as a fresh image would contain only its own).
    """
    venv = tmp_path / "venv"
    for n, service in enumerate(envvars.SERVICES):
        workdir = tmp_path / "src"
        _build(service, workdir, venv, compile_bytecode=n == 0)
        if n == 0:
            assert list(venv.glob("lib/python3.*/site-packages/logriver_common/__pycache__/*.pyc"))
        site = next((venv / "lib").glob("python3.*/site-packages"))
        installed = {p.name for p in site.iterdir() if p.name.startswith("logriver_")}
        assert {f"logriver_{service}", "logriver_common"} <= installed, installed
        others = {f"logriver_{s}" for s in envvars.SERVICES if s != service}
        assert not (installed & others), f"{service} image would carry {installed & others}"
        # --no-editable: real files in site-packages, no path back to the sources.
        assert (site / f"logriver_{service}" / "__main__.py").is_file()
        assert not list(site.glob("*logriver*.pth"))
        shutil.rmtree(workdir)  # the runtime image has no sources either

        run_dir = tmp_path / f"run-{service}"
        run_dir.mkdir()
        # The ingest image also runs the relay (a second Deployment in Kubernetes).
        for args in [()] + ([("relay",)] if service == "ingest" else []):
            _run_and_probe(service, venv, isolation, run_dir, args)

    # A probe on a port nothing listens on fails (the healthcheck can fail at all).
    dead = subprocess.run(
        [sys.executable, str(ROOT / "deploy/docker/healthcheck.py")],
        env={"APP_SERVICE": "ingest", "LOGRIVER_INGEST_PORT": str(free_port())},
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert dead.returncode == 1
