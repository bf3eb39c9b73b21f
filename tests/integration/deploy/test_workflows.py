""".github/workflows: actionlint (offline), and what the release workflow promises."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import validators
from tests.integration.deploy.test_kubernetes import _tool
from tests.unit.deploy import envvars
from tests.unit.deploy.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
RELEASE = WORKFLOWS / "release.yml"


def actionlint(*files: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_tool(validators.binary("actionlint"))), "-no-color", *map(str, files)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_actionlint_passes_every_workflow() -> None:
    files = sorted(WORKFLOWS.glob("*.y*ml"))
    assert RELEASE in files
    result = actionlint(*files)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("mistake", "expected"),
    [
        (
            (
                "runs-on: ubuntu-24.04\n    timeout-minutes: 5",
                "runs-on: ubuntu-24.04\n    timout-minutes: 5",
            ),
            "timout-minutes",
        ),
        (("${{ matrix.service }}:scan", "${{ matrix.servce }}:scan"), "servce"),
        (("needs: verify", "needs: verfy"), "verfy"),
    ],
)
def test_actionlint_catches_mistakes(
    tmp_path: Path, mistake: tuple[str, str], expected: str
) -> None:
    old, new = mistake
    text = RELEASE.read_text()
    assert old in text
    broken = tmp_path / ".github" / "workflows" / "release.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(old, new, 1))
    result = actionlint(broken, cwd=tmp_path)
    assert result.returncode != 0
    assert expected in result.stdout


def _release() -> dict[str, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1).
    data: dict[Any, Any] = yaml.safe_load(RELEASE.read_text())
    data["on"] = data.pop(True)
    return data


def test_release_runs_on_version_tags_only_with_least_privilege() -> None:
    release = _release()
    assert set(release["on"]) == {"push"}
    assert set(release["on"]["push"]) == {"tags"}
    assert release["permissions"] == {"contents": "read"}
    image = release["jobs"]["image"]
    assert image["needs"] == "verify"
    assert image["permissions"] == {
        "contents": "read",
        "packages": "write",
        "security-events": "write",
    }
    assert image["strategy"]["matrix"]["service"] == list(envvars.SERVICES)
    for job in release["jobs"].values():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout"):
                assert step["with"]["persist-credentials"] is False


def test_release_pushes_only_what_passed_the_scan() -> None:
    steps = _release()["jobs"]["image"]["steps"]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    build = uses.index("docker/build-push-action")
    scan = uses.index("aquasecurity/trivy-action")
    push = len(uses) - 1 - uses[::-1].index("docker/build-push-action")
    assert build < scan < push
    assert steps[build]["with"]["push"] is False
    gate = steps[scan]
    assert gate["with"]["exit-code"] == "1"
    assert "if" not in gate  # a failed scan stops the job before the push
    assert set(gate["with"]["severity"].split(",")) == {"HIGH", "CRITICAL"}
    assert steps[push]["with"]["push"] is True
    assert "if" not in steps[push]
    # The pushed image is the one scanned: same build, from the same cache.
    for key in ("context", "file", "build-args", "cache-from"):
        assert steps[push]["with"][key] == steps[build]["with"][key]


def _verify_script() -> str:
    (step,) = [s for s in _release()["jobs"]["verify"]["steps"] if "run" in s]
    script: str = step["run"]
    return script


@pytest.mark.parametrize(("tag", "ok"), [("v0.1.0", True), ("v0.2.0", False), ("v0.1.0.1", False)])
def test_the_tag_must_match_the_prod_overlay(tag: str, ok: bool) -> None:
    prod = (ROOT / "deploy/k8s/overlays/prod/kustomization.yaml").read_text()
    version = next(
        line.split("newTag: ")[1].rstrip("}")
        for line in prod.splitlines()
        if "name: logriver-ingest," in line
    )
    tag = tag.replace("0.1.0", version, 1) if ok else tag
    result = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", _verify_script()],
        cwd=ROOT,
        env={**os.environ, "TAG": tag},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
