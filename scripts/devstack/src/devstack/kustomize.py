"""kustomize, built from the Go module proxy, so tests can render ``deploy/k8s`` offline.

Nothing runs: the stack only installs the binary (``go install`` with ``GOBIN``
pointing into the cache). The deploy tests find it with :func:`binary`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from devstack import paths
from devstack.process import StackError, run

MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
VERSION = "v5.8.2"
NAME = "kustomize"


def binary() -> Path:
    return paths.cache_dir() / f"kustomize-{VERSION}" / "kustomize"


def install() -> None:
    target = binary()
    if target.exists():
        return
    if not shutil.which("go"):
        raise StackError(NAME, "needs Go on PATH to build kustomize from the Go module proxy")
    # Build into a scratch directory and rename, so a failed build leaves no half binary.
    partial = target.parent.with_name(target.parent.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    run(
        NAME,
        ["go", "install", f"{MODULE}@{VERSION}"],
        env={"GOBIN": str(partial), "GOFLAGS": "-buildvcs=false"},
    )
    shutil.rmtree(target.parent, ignore_errors=True)
    partial.rename(target.parent)
