"""kubeconform and actionlint: offline validators for deploy/k8s and .github/workflows.

Both are Go modules; ``go install`` builds them into the cache (``GOBIN``), as
devstack does for kustomize. Nothing runs here: the deploy tests call them.

- kubeconform validates every rendered Kubernetes object against JSON schemas
  on disk only (the tests point it at kubernetes-validate's bundled schemas for
  built-in kinds, and at schemas derived from the operators' CRDs).
- actionlint checks the GitHub Actions workflows (syntax, expressions, job
  dependencies, action inputs it knows, shell scripts when shellcheck exists).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from devstack import paths
from devstack.process import StackError, run

NAME = "validators"
TOOLS = {
    "kubeconform": ("github.com/yannh/kubeconform/cmd/kubeconform", "v0.7.0"),
    "actionlint": ("github.com/rhysd/actionlint/cmd/actionlint", "v1.7.12"),
}


def binary(tool: str) -> Path:
    _, version = TOOLS[tool]
    return paths.cache_dir() / f"{tool}-{version}" / tool


def install() -> None:
    for tool in TOOLS:
        _go_install(tool)


def _go_install(tool: str) -> None:
    target = binary(tool)
    if target.exists():
        return
    if not shutil.which("go"):
        raise StackError(NAME, f"needs Go on PATH to build {tool} from the Go module proxy")
    module, version = TOOLS[tool]
    # Build into a scratch directory and rename, so a failed build leaves no half binary.
    partial = target.parent.with_name(target.parent.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    run(
        NAME,
        ["go", "install", f"{module}@{version}"],
        env={"GOBIN": str(partial), "GOFLAGS": "-buildvcs=false"},
    )
    shutil.rmtree(target.parent, ignore_errors=True)
    partial.rename(target.parent)
