"""The Dockerfile, checked statically (no processes: the replay of its builder
stage, which starts every service, is tests/integration/deploy/test_dockerfile_replay.py).
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

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
