"""The Dockerfile: checked statically, and its builder stage replayed without Docker.

There is no Docker engine here, so the replay does what the builder stage does:
copy exactly the files its COPY lines name into a clean directory, run its RUN
lines (uv) with its ENV, into a fresh virtualenv (``UV_PROJECT_ENVIRONMENT``),
then start the service from that virtualenv with ``python -m logriver_<svc>``
and probe it with the image's own healthcheck script. uv runs with
``UV_OFFLINE=1``: the wheels come from uv's cache (filled by the workspace's own
``uv sync``), so the test needs no network, and an unlocked dependency fails.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import re
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

DOCKERFILE = ROOT / "Dockerfile"


def _stages() -> dict[str, dockerfile.Stage]:
    _, stages = dockerfile.parse(DOCKERFILE)
    return {s.name: s for s in stages}


def _uv_syncs(stage: dockerfile.Stage) -> list[tuple[int, str]]:
    return [
        (i, dockerfile.run_command(inst))
        for i, inst in enumerate(stage.instructions)
        if inst.keyword == "RUN" and "uv sync" in inst.args
    ]


def test_base_images_are_slim_and_uv_is_the_makefiles() -> None:
    global_args, stages = dockerfile.parse(DOCKERFILE)
    assert [s.name for s in stages] == ["builder", "runtime"]
    image = global_args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image), image
    assert all(s.base == "${PYTHON_IMAGE}" for s in stages)
    uv_copies = [
        dockerfile.parse_copy(c) for c in stages[0].all("COPY") if "astral-sh/uv" in c.args
    ]
    assert len(uv_copies) == 1
    makefile_uv = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert makefile_uv is not None
    assert uv_copies[0].from_stage == f"ghcr.io/astral-sh/uv:{makefile_uv.group(1)}"


def test_dependency_layer_comes_before_the_source() -> None:
    builder = _stages()["builder"]
    syncs = _uv_syncs(builder)
    assert len(syncs) == 2
    (deps_at, deps_cmd), (src_at, src_cmd) = syncs
    for flag in ("--frozen", "--no-dev", "--package logriver-${SERVICE}"):
        assert flag in deps_cmd
        assert flag in src_cmd
    assert "--no-install-workspace" in deps_cmd
    assert "--no-install-workspace" not in src_cmd
    assert "--no-editable" in src_cmd  # the runtime image copies only the venv
    copies = [
        (i, dockerfile.parse_copy(inst))
        for i, inst in enumerate(builder.instructions)
        if inst.keyword == "COPY"
    ]
    before = [c for i, c in copies if i < deps_at and c.from_stage is None]
    between = [c for i, c in copies if deps_at < i < src_at]
    # Only manifests before the dependency layer, so a code change keeps it cached.
    for copy in before:
        for source in copy.sources:
            assert source.endswith(("pyproject.toml", "uv.lock")), source
    copied = {s for c in before for s in c.sources}
    assert {"pyproject.toml", "uv.lock", "libs/common/pyproject.toml"} <= copied
    for service in envvars.SERVICES:
        assert f"services/{service}/pyproject.toml" in copied
    for source in copied:
        assert (ROOT / source).is_file(), source
    assert {s for c in between for s in c.sources} == {
        "libs/common/src",
        "services/${SERVICE}/src",
    }


def test_runtime_is_unprivileged_with_a_healthcheck() -> None:
    runtime = _stages()["runtime"]
    users = runtime.all("USER")
    assert users, "runtime stage has no USER"
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit(), "numeric uid, so Kubernetes can verify runAsNonRoot"
    assert int(uid) != 0
    assert runtime.all("HEALTHCHECK")
    assert "/app/healthcheck.py" in runtime.all("HEALTHCHECK")[0].args
    copies = [dockerfile.parse_copy(c) for c in runtime.all("COPY")]
    assert {c.from_stage for c in copies} == {"builder", None}
    assert any(c.sources == ("deploy/docker/healthcheck.py",) for c in copies)
    assert not any("uv" in r.args.split() for r in runtime.all("RUN")), "no uv at runtime"
    cmd = runtime.all("CMD")[-1].args
    assert "exec python -m logriver_${APP_SERVICE}" in cmd
    assert runtime.env()["APP_SERVICE"] == "${SERVICE}"


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = Path(path).parts
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for i in range(len(parts)):
            prefix = "/".join(parts[: i + 1])
            if fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(parts[i], bare):
                return True
    return False


def test_dockerignore_keeps_what_the_build_copies_and_drops_the_rest() -> None:
    patterns = _dockerignore()
    for stage in _stages().values():
        for inst in stage.all("COPY"):
            copy = dockerfile.parse_copy(inst)
            if copy.from_stage is not None:
                continue
            for source in copy.sources:
                for service in envvars.SERVICES:
                    path = dockerfile.substitute(source, {"SERVICE": service})
                    assert not _ignored(path, patterns), f"{path} is excluded by .dockerignore"
    for unwanted in (".venv", ".git", "libs/common/src/logriver_common/__pycache__", "tests"):
        assert _ignored(unwanted, patterns), unwanted


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
        "LOGRIVER_MONGO_DATABASE": f"test_deploy_{unique}",
        "LOGRIVER_OTEL_ENABLED": "false",
    }
    topics = [env["LOGRIVER_KAFKA_TOPIC"], env["LOGRIVER_KAFKA_DLQ_TOPIC"]]
    asyncio.run(_kafka_topics(create=topics, delete=None))
    yield env
    asyncio.run(_kafka_topics(create=None, delete=topics))
    client: MongoClient[dict[str, object]] = MongoClient(STACK.mongo_uri)
    try:
        client.drop_database(env["LOGRIVER_MONGO_DATABASE"])
    finally:
        client.close()


def _start_from_venv(
    service: str, venv: Path, env: dict[str, str], cwd: Path
) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    prefix = f"LOGRIVER_{service.upper()}_"
    unique = uuid.uuid4().hex[:8]
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LOGRIVER_", "UV_"))}
    full.pop("VIRTUAL_ENV", None)
    full.pop("PYTHONPATH", None)
    full.update(env)
    full[f"{prefix}PORT"] = str(port)
    full[f"{prefix}HOST"] = "127.0.0.1"
    # Consumer groups are derived from the code, so new consumers are isolated too.
    for name in envvars.service_env(service):
        if name.endswith("_GROUP_ID"):
            full[name] = f"test-deploy-{service}-{unique}"
    log = cwd / f"{service}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(venv / "bin" / "python"), "-m", f"logriver_{service}"],
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
        proc, port, log = _start_from_venv(service, venv, isolation, run_dir)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait(proc, f"{base}/healthz", log, {200}, within=30)
            # The image's HEALTHCHECK script agrees.
            check = subprocess.run(
                [sys.executable, str(ROOT / "deploy/docker/healthcheck.py")],
                env={
                    "APP_SERVICE": service,
                    f"LOGRIVER_{service.upper()}_PORT": str(port),
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

    # A probe on a port nothing listens on fails (the healthcheck can fail at all).
    dead = subprocess.run(
        [sys.executable, str(ROOT / "deploy/docker/healthcheck.py")],
        env={"APP_SERVICE": "ingest", "LOGRIVER_INGEST_PORT": str(free_port())},
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert dead.returncode == 1
