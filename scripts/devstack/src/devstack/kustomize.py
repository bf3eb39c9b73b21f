"""Offline tools for validating ``deploy/k8s``: kustomize and the operators' CRD schemas.

Nothing runs: the stack only installs, into the cache, so the deploy tests can
render and validate the manifests with no network.

- kustomize: ``go install`` from the Go module proxy (``GOBIN`` in the cache).
- MongoDB Community operator CRD: the operator's Go module ships
  ``config/crd/bases``; ``go mod download`` fetches that exact version.
- Strimzi (Kafka, KafkaNodePool, KafkaTopic): no registry package ships the
  CRD YAML, but the npm package ``@kubernetes-models/strimzi-kafka-operator``
  ships validators generated from those CRDs' schemas; the tests run them with
  node.
- kubeconform and actionlint (``devstack.validators``): installed alongside, for
  the same tests and for .github/workflows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from devstack import paths, validators
from devstack.process import StackError, run

MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
VERSION = "v5.8.2"  # v5.8.3 needs Go 1.27
NAME = "kustomize"
MONGODB_OPERATOR = "github.com/mongodb/mongodb-kubernetes-operator"
MONGODB_OPERATOR_VERSION = "v0.13.0"
STRIMZI_MODELS = "@kubernetes-models/strimzi-kafka-operator"
STRIMZI_MODELS_VERSION = "1.0.1"


def binary() -> Path:
    return paths.cache_dir() / f"kustomize-{VERSION}" / "kustomize"


def mongodb_crd() -> Path:
    return (
        paths.cache_dir()
        / f"mongodb-operator-crd-{MONGODB_OPERATOR_VERSION}"
        / "mongodbcommunity.mongodb.com_mongodbcommunity.yaml"
    )


def strimzi_models() -> Path:
    """A node project whose node_modules holds the Strimzi model validators."""
    return paths.cache_dir() / f"strimzi-models-{STRIMZI_MODELS_VERSION}"


def install() -> None:
    _install_kustomize()
    _install_mongodb_crd()
    _install_strimzi_models()
    validators.install()


def _fresh(partial: Path) -> Path:
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def _install_kustomize() -> None:
    target = binary()
    if target.exists():
        return
    if not shutil.which("go"):
        raise StackError(NAME, "needs Go on PATH to build kustomize from the Go module proxy")
    # Build into a scratch directory and rename, so a failed build leaves no half binary.
    partial = _fresh(target.parent.with_name(target.parent.name + ".partial"))
    run(
        NAME,
        ["go", "install", f"{MODULE}@{VERSION}"],
        env={"GOBIN": str(partial), "GOFLAGS": "-buildvcs=false"},
    )
    shutil.rmtree(target.parent, ignore_errors=True)
    partial.rename(target.parent)


def _install_mongodb_crd() -> None:
    target = mongodb_crd()
    if target.exists():
        return
    if not shutil.which("go"):
        raise StackError(NAME, "needs Go on PATH to fetch the MongoDB operator's CRD")
    info = json.loads(
        run(
            NAME,
            ["go", "mod", "download", "-json", f"{MONGODB_OPERATOR}@{MONGODB_OPERATOR_VERSION}"],
        )
    )
    source = Path(info["Dir"]) / "config" / "crd" / "bases" / target.name
    partial = _fresh(target.parent.with_name(target.parent.name + ".partial"))
    shutil.copyfile(source, partial / target.name)
    shutil.rmtree(target.parent, ignore_errors=True)
    partial.rename(target.parent)


def _install_strimzi_models() -> None:
    target = strimzi_models()
    if (target / "node_modules" / STRIMZI_MODELS / "package.json").exists():
        return
    if not shutil.which("npm"):
        raise StackError(NAME, "needs npm on PATH to fetch the Strimzi CRD validators")
    partial = _fresh(target.with_name(target.name + ".partial"))
    (partial / "package.json").write_text('{"private": true, "type": "module"}\n')
    run(
        NAME,
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--save-exact",
            f"{STRIMZI_MODELS}@{STRIMZI_MODELS_VERSION}",
        ],
        cwd=partial,
    )
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
