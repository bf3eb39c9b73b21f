"""kubeconform over both rendered overlays, offline, with every schema on disk.

- Built-in kinds: the strict Kubernetes 1.33 schemas that ``kubernetes-validate``
  bundles, copied into kubeconform's directory layout (their absolute
  ``/api/_definitions.json`` references made relative).
- MongoDBCommunity: converted from the operator's own CRD (its Go module,
  fetched by ``devstack install``): openAPIV3Schema, strict where the CRD does
  not preserve unknown fields.
- Strimzi Kafka, KafkaNodePool, KafkaTopic, KafkaUser: no registry package
  ships the CRD YAML, so deploy/k8s/schemas/kafka.strimzi.io holds schemas
  written for the fields logriver uses (strict about the rest). The last test
  here checks they agree with the validators generated from the full CRDs.

kubeconform runs without -ignore-missing-schemas: an object of a kind with no
schema is an error, not a skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from devstack import kustomize, validators
from tests.integration.deploy.test_kubernetes import (
    KUBERNETES_VERSION,
    OVERLAYS,
    _one,
    _strimzi_errors,
    _tool,
    render,
)
from tests.unit.deploy.conftest import ROOT

Obj = dict[str, Any]
K8S_VERSION = f"{KUBERNETES_VERSION}.0"
STRIMZI_SCHEMAS = ROOT / "deploy/k8s/schemas"
# kubeconform's path templates: its own layout for built-in kinds, group/kind_version for CRDs.
BUILTIN_LAYOUT = (
    "/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}"
    "/{{ .ResourceKind }}{{ .KindSuffix }}.json"
)
CRD_LAYOUT = "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"


def _builtin_schemas(target: Path) -> None:
    bundled = (
        Path(kubernetes_validate.__file__).parent
        / "kubernetes-json-schema"
        / f"v{K8S_VERSION}-local-strict"
    )
    assert bundled.is_dir(), bundled
    out = target / f"v{K8S_VERSION}-standalone-strict"
    out.mkdir(parents=True)
    for path in bundled.glob("*.json"):
        text = path.read_text().replace('"/api/_definitions.json#', '"_definitions.json#')
        schema = json.loads(text)
        schema.pop("$id", None)
        (out / path.name).write_text(json.dumps(schema))


def _strict(schema: Any) -> Any:
    """openAPIV3 -> JSON schema for kubeconform -strict (like openapi2jsonschema --strict)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


def _mongodb_schema(target: Path) -> None:
    crd = yaml.safe_load(_tool(kustomize.mongodb_crd()).read_text())
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"].lower()
    (target / group).mkdir(parents=True)
    for version in crd["spec"]["versions"]:
        schema = _strict(version["schema"]["openAPIV3Schema"])
        (target / group / f"{kind}_{version['name']}.json").write_text(json.dumps(schema))


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("kubeconform-schemas")
    _builtin_schemas(target)
    _mongodb_schema(target)
    shutil.copytree(STRIMZI_SCHEMAS / "kafka.strimzi.io", target / "kafka.strimzi.io")
    return target


def kubeconform(schemas: Path, documents: list[Obj] | tuple[Obj, ...]) -> list[Obj]:
    """Each object's result: {"kind", "name", "status", "msg"} (status: valid/invalid/error)."""
    result = subprocess.run(
        [
            str(_tool(validators.binary("kubeconform"))),
            "-strict",
            "-verbose",
            "-output",
            "json",
            "-kubernetes-version",
            K8S_VERSION,
            "-schema-location",
            str(schemas) + BUILTIN_LAYOUT,
            "-schema-location",
            str(schemas) + CRD_LAYOUT,
            "-",
        ],
        input=yaml.safe_dump_all(list(documents)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout, result.stderr
    resources: list[Obj] = json.loads(result.stdout)["resources"]
    return resources


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubeconform_finds_every_rendered_object_valid(overlay: str, schemas: Path) -> None:
    objects = render(overlay)
    results = kubeconform(schemas, objects)
    assert len(results) == len(objects)
    problems = [f"{r['kind']}/{r['name']}: {r['status']} {r['msg']}" for r in results]
    assert all(r["status"] == "statusValid" for r in results), "\n".join(
        p for p, r in zip(problems, results, strict=True) if r["status"] != "statusValid"
    )
    kinds = {r["kind"] for r in results}
    assert {"KafkaUser", "KafkaTopic", "Kafka", "MongoDBCommunity", "NetworkPolicy"} <= kinds


def _broken(objects: tuple[Obj, ...]) -> list[Obj]:
    """One mistake per kind that a reviewer could make."""
    copy = json.loads(json.dumps(objects))
    user = _one(copy, "KafkaUser", "logriver-writer")
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Reed"]
    topic = _one(copy, "KafkaTopic", "logs.raw.v1")
    topic["spec"]["partitons"] = 6
    kafka = _one(copy, "Kafka", "logriver")
    kafka["spec"]["kafka"]["listeners"][0]["authentication"]["type"] = "scram-sha-256"
    pool = next(o for o in copy if o["kind"] == "KafkaNodePool")
    pool["spec"]["roles"] = ["leader"]
    mongodb = _one(copy, "MongoDBCommunity", "logriver-mongodb")
    mongodb["spec"]["members"] = "three"
    policy = _one(copy, "NetworkPolicy", "logriver-ingest")
    policy["spec"]["ingres"] = policy["spec"].pop("ingress")
    ingress = _one(copy, "Ingress", "logriver-query")
    ingress["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = 7
    return [user, topic, kafka, pool, mongodb, policy, ingress]


def test_kubeconform_rejects_broken_objects(schemas: Path) -> None:
    broken = _broken(render("prod"))
    results = kubeconform(schemas, broken)
    assert [r["status"] for r in results] == ["statusInvalid"] * len(broken), results


def test_the_strimzi_schemas_agree_with_the_full_crd_validators(schemas: Path) -> None:
    """Valid objects pass both; each broken Strimzi object fails both."""
    objects = render("prod")
    strimzi = [o for o in objects if o["apiVersion"].startswith("kafka.strimzi.io/")]
    assert not any(_strimzi_errors(strimzi))
    assert all(r["status"] == "statusValid" for r in kubeconform(schemas, strimzi))
    broken = [o for o in _broken(objects) if o["apiVersion"].startswith("kafka.strimzi.io/")]
    # An unknown field is pruned, not refused, by the API server; the hand-written
    # schema is stricter there (kubeconform -strict), so compare the rest.
    typed = [o for o in broken if "partitons" not in o["spec"]]
    assert all(_strimzi_errors(typed)), "the CRD validators accept a broken object"
    assert all(r["status"] == "statusInvalid" for r in kubeconform(schemas, broken))
