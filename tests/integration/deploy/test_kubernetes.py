"""deploy/k8s: render each overlay with a real kustomize, validate every object offline.

- Built-in kinds: the Kubernetes JSON schemas bundled by ``kubernetes-validate``
  (strict: unknown fields are errors).
- MongoDBCommunity: the openAPIV3 schema of the operator's own CRD (from its Go
  module, installed by ``devstack install``).
- Strimzi Kafka, KafkaNodePool, KafkaTopic: validators generated from Strimzi's
  CRD schemas (npm ``@kubernetes-models/strimzi-kafka-operator``), run with node.

The tools live in the devstack cache (``uv run devstack install`` puts them there).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from devstack import jaeger, kustomize
from tests.unit.deploy import envvars
from tests.unit.deploy.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33"
OVERLAYS = ("dev", "prod")
HPA_SERVICES = ("ingest", "query", "stream")
CONSUMERS = ("writer", "alerter", "relay")
# Each logriver Deployment -> the service whose settings class it reads.
WORKLOADS = {**{s: s for s in envvars.SERVICES}, "relay": "ingest"}
KAFKA_CLIENTS = ("ingest", "relay", "writer", "alerter", "stream")
# Never routed publicly (tests below): operational endpoints of every service.
PRIVATE_PATHS = ("/metrics", "/healthz", "/readyz", "/docs", "/redoc", "/openapi.json")
CONSOLE_DIR = ROOT / "services/query/src/logriver_query/console"
STRIMZI_GROUP = "kafka.strimzi.io"
MONGODB_GROUP = "mongodbcommunity.mongodb.com"

Obj = dict[str, Any]


def _tool(path: Path) -> Path:
    assert path.exists(), f"{path} is missing: run `uv run devstack install`"
    return path


@cache
def render(target: str) -> tuple[Obj, ...]:
    directory = K8S / ("base" if target == "base" else f"overlays/{target}")
    result = subprocess.run(
        [str(_tool(kustomize.binary())), "build", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _find(objects: tuple[Obj, ...], kind: str, name: str | None = None) -> list[Obj]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def _one(objects: tuple[Obj, ...], kind: str, name: str) -> Obj:
    found = _find(objects, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


# --- schema validation ---------------------------------------------------------


def _builtin_errors(obj: Obj) -> str:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return str(exc.message)
    return ""


@cache
def _mongodb_schema() -> Obj:
    crd = yaml.safe_load(_tool(kustomize.mongodb_crd()).read_text())
    assert crd["spec"]["group"] == MONGODB_GROUP
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema: Obj = version["schema"]["openAPIV3Schema"]
    return schema


def _mongodb_errors(obj: Obj) -> str:
    validator = jsonschema.Draft7Validator(_mongodb_schema())
    return "; ".join(f"{e.json_path}: {e.message}" for e in validator.iter_errors(obj))


def _strimzi_errors(objects: list[Obj]) -> list[str]:
    node = shutil.which("node")
    assert node, "node is needed to run the Strimzi CRD validators"
    models = _tool(kustomize.strimzi_models())
    result = subprocess.run(
        [node, str(Path(__file__).with_name("strimzi_validate.mjs")), str(models)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    errors: list[str] = json.loads(result.stdout)
    assert len(errors) == len(objects)
    return errors


def _group(obj: Obj) -> str:
    return str(obj["apiVersion"]).split("/")[0] if "/" in obj["apiVersion"] else ""


@pytest.mark.parametrize("target", ["base", *OVERLAYS])
def test_every_object_is_valid_against_its_schema(target: str) -> None:
    objects = render(target)
    assert objects
    errors: list[str] = []
    strimzi = [o for o in objects if _group(o) == STRIMZI_GROUP]
    for obj, error in zip(strimzi, _strimzi_errors(strimzi), strict=True):
        if error:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {error}")
    for obj in objects:
        if _group(obj) == STRIMZI_GROUP:
            continue
        error = _mongodb_errors(obj) if _group(obj) == MONGODB_GROUP else _builtin_errors(obj)
        if error:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {error}")
    assert not errors, "\n".join(errors)
    kinds = {o["kind"] for o in objects}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "MongoDBCommunity"} <= kinds


def test_the_validators_reject_broken_objects() -> None:
    """Each of the three validators can fail (so the test above means something)."""
    objects = render("prod")
    deployment = json.loads(json.dumps(_one(objects, "Deployment", "logriver-ingest")))
    deployment["spec"]["replicas"] = "two"
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    assert "two" in _builtin_errors(deployment) or "livenessprobe" in _builtin_errors(deployment)
    mongodb = json.loads(json.dumps(_one(objects, "MongoDBCommunity", "logriver-mongodb")))
    mongodb["spec"]["type"] = "Cluster"
    mongodb["spec"]["members"] = "three"
    error = _mongodb_errors(mongodb)
    assert "Cluster" in error
    assert "three" in error
    topic = json.loads(json.dumps(_one(objects, "KafkaTopic", "logs.v1")))
    topic["spec"]["partitions"] = "six"
    kafka = json.loads(json.dumps(_one(objects, "Kafka", "logriver")))
    del kafka["spec"]["kafka"]["listeners"]
    topic_error, kafka_error = _strimzi_errors([topic, kafka])
    assert "partitions" in topic_error
    assert "listeners" in kafka_error


# --- workloads ------------------------------------------------------------------


def _workloads(objects: tuple[Obj, ...]) -> Iterator[Obj]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            yield obj


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_is_locked_down_and_sized(overlay: str) -> None:
    workloads = list(_workloads(render(overlay)))
    assert workloads
    for workload in workloads:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name
            image = container["image"]
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: untagged {image}"
            assert not image.endswith(":latest"), name
            assert container["livenessProbe"], name
            assert container["readinessProbe"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_probe_health_and_expose_their_port(overlay: str) -> None:
    objects = render(overlay)
    for workload, service in WORKLOADS.items():
        deployment = _one(objects, "Deployment", f"logriver-{workload}")
        pod = deployment["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        port = envvars.RELAY_PORT if workload == "relay" else envvars.PORTS[service]
        command = ["python", "-m", f"logriver_{service}"]
        assert container["command"] == command + (["relay"] if workload == "relay" else [])
        ports = [{"name": "http", "containerPort": port}]
        if workload == "ingest":
            ports.append({"name": "otlp-grpc", "containerPort": 4319})
        assert container["ports"] == ports
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts  # noqa: S108 - writable scratch under a read-only root
        svc = _one(objects, "Service", f"logriver-{workload}")
        assert svc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        labels = pod["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert svc["spec"]["ports"][0] == {"name": "http", "port": port, "targetPort": "http"}
        if overlay == "prod":
            assert container["image"].startswith(f"ghcr.io/logriver/logriver-{service}:")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_hpas_pdbs_and_partition_bound_consumers(overlay: str) -> None:
    objects = render(overlay)
    topic = _one(objects, "KafkaTopic", "logs.v1")
    partitions = topic["spec"]["partitions"]
    assert partitions == 6
    hpa_targets = {
        h["spec"]["scaleTargetRef"]["name"] for h in _find(objects, "HorizontalPodAutoscaler")
    }
    assert hpa_targets == {f"logriver-{s}" for s in HPA_SERVICES}
    for service in HPA_SERVICES:
        hpa = _one(objects, "HorizontalPodAutoscaler", f"logriver-{service}")
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        pdb = _one(objects, "PodDisruptionBudget", f"logriver-{service}")
        deployment = _one(objects, "Deployment", f"logriver-{service}")
        assert (
            pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        )
        # A PDB must leave room to drain a node at the HPA's minimum.
        if "minAvailable" in pdb["spec"]:
            assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    for service in CONSUMERS:
        replicas = _one(objects, "Deployment", f"logriver-{service}")["spec"]["replicas"]
        # More consumers than partitions would sit idle (docs/operations.md).
        assert 1 <= replicas <= partitions, f"{service}: {replicas} > {partitions} partitions"


# --- Kafka, MongoDB, Jaeger, Ingress ------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_is_kraft_with_the_pipelines_topics(overlay: str) -> None:
    objects = render(overlay)
    (kafka,) = _find(objects, "Kafka")
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    assert kafka["spec"]["kafka"]["version"] == "4.1.1"
    config = kafka["spec"]["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False
    assert config["log.retention.hours"] == 168
    (pool,) = _find(objects, "KafkaNodePool")
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    nodes = pool["spec"]["replicas"]
    assert config["min.insync.replicas"] < nodes or nodes == config["min.insync.replicas"] == 1
    topics = {t["spec"]["topicName"]: t for t in _find(objects, "KafkaTopic")}
    assert set(topics) == {"logs.v1", "logs.raw.v1", "logs.v1.dlq"}
    assert topics["logs.raw.v1"]["spec"]["partitions"] == topics["logs.v1"]["spec"]["partitions"]
    for topic in topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert topic["spec"]["replicas"] <= nodes
    assert topics["logs.v1"]["spec"]["config"]["retention.ms"] == 168 * 3600 * 1000
    # One listener, TLS with SCRAM-SHA-512; authorization on (no ACL, no access).
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] is True
    assert listener["authentication"] == {"type": "scram-sha-512"}
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert "superUsers" not in kafka["spec"]["kafka"]["authorization"]
    assert listener["networkPolicyPeers"], "without peers Strimzi admits every pod"
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap:{listener['port']}"
    env = _config_values(objects, "logriver-kafka")
    assert env["LOGRIVER_KAFKA_BOOTSTRAP_SERVERS"] == bootstrap
    assert env["LOGRIVER_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["LOGRIVER_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["LOGRIVER_KAFKA_TOPIC"] == "logs.v1"
    assert env["LOGRIVER_KAFKA_RAW_TOPIC"] == "logs.raw.v1"
    assert env["LOGRIVER_KAFKA_DLQ_TOPIC"] == "logs.v1.dlq"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mongodb_is_a_three_member_replica_set(overlay: str) -> None:
    objects = render(overlay)
    (mongodb,) = _find(objects, "MongoDBCommunity")
    spec = mongodb["spec"]
    assert spec["type"] == "ReplicaSet"
    assert spec["members"] == 3
    major, minor, _ = (int(part) for part in spec["version"].split("."))
    assert (major, minor) >= (7, 0), "MongoDB 6.0 is past its end of life"
    assert spec["featureCompatibilityVersion"] == f"{major}.{minor}"
    (user,) = spec["users"]
    assert {"name": "readWrite", "db": "logriver"} in user["roles"]
    password = user["passwordSecretRef"]["name"]
    # The template in the base; the dev overlay fills it; prod expects it to exist.
    assert _find(render("base"), "Secret", password)
    assert bool(_find(objects, "Secret", password)) == (overlay == "dev")


def _config_values(objects: tuple[Obj, ...], generated: str) -> dict[str, str]:
    """The data of the ConfigMap generated as ``generated`` (name has a hash suffix)."""
    found = [
        o
        for o in _find(objects, "ConfigMap")
        if re.fullmatch(rf"{generated}-[a-z0-9]{{10}}", o["metadata"]["name"])
    ]
    assert len(found) == 1, generated
    data: dict[str, str] = found[0]["data"]
    return data


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_jaeger_v2_receives_the_services_otlp(overlay: str) -> None:
    objects = render(overlay)
    deployment = _one(objects, "Deployment", "jaeger")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "jaegertracing/jaeger:2.13.0"
    config_map = deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
    config = yaml.safe_load(_one(objects, "ConfigMap", config_map)["data"]["config.yaml"])
    # The same pipeline as the local stack, listening on all interfaces, except
    # the storage: Badger on the persistent volume instead of memory.
    local = yaml.safe_load(
        (ROOT / "scripts/devstack/src/devstack/resources/jaeger.yaml")
        .read_text()
        .replace("127.0.0.1:", "0.0.0.0:")
    )
    (backend,) = config["extensions"]["jaeger_storage"]["backends"].values()
    badger = backend["badger"]
    assert badger["ephemeral"] is False
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    data = next(name for name, path in mounts.items() if path == "/badger")
    claim = volumes[data]["persistentVolumeClaim"]["claimName"]
    assert _one(objects, "PersistentVolumeClaim", claim)["spec"]["resources"]["requests"]["storage"]
    for directory in badger["directories"].values():
        assert directory.startswith("/badger/"), directory
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # one writer of the volume
    for name in ("extensions", "receivers", "processors", "exporters"):
        config[name].pop("jaeger_storage", None)
        local[name].pop("jaeger_storage", None)
    for part in (config, local):
        part["extensions"]["jaeger_query"]["storage"].pop("traces")
        part["exporters"]["jaeger_storage_exporter"].pop("trace_storage")
    assert config == local
    service = _one(objects, "Service", "jaeger")
    grpc = next(p for p in service["spec"]["ports"] if p["name"] == "otlp-grpc")
    endpoint = _config_values(objects, "logriver-common")["LOGRIVER_OTEL_ENDPOINT"]
    assert endpoint == f"http://jaeger:{grpc['port']}"
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(f":{grpc['port']}")


def _jaeger_validate(config: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "jaeger.yaml"
    path.write_text(config)
    return subprocess.run(
        [str(_tool(jaeger._binary())), "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_jaeger_accepts_its_configuration(tmp_path: Path) -> None:
    """The real Jaeger 2.13 binary (the local stack's) validates the ConfigMap."""
    objects = render("prod")
    config_maps = [c for c in _find(objects, "ConfigMap") if "config.yaml" in c.get("data", {})]
    (config_map,) = config_maps
    config = config_map["data"]["config.yaml"]
    result = _jaeger_validate(config, tmp_path)
    assert result.returncode == 0, result.stderr
    broken = _jaeger_validate(
        config.replace("timeout: 200ms", "timeout: 200ms\n    bogus: 1"), tmp_path
    )
    assert broken.returncode != 0
    assert "bogus" in broken.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingresses_route_to_the_services_and_keep_sse_streaming(overlay: str) -> None:
    objects = render(overlay)
    ingresses = {i["metadata"]["name"]: i for i in _find(objects, "Ingress")}
    assert set(ingresses) == {
        "logriver-ingest",
        "logriver-ingest-otlp",
        "logriver-query",
        "logriver-stream",
        "jaeger",
    }
    for name, ingress in ingresses.items():
        assert ingress["spec"]["ingressClassName"] == "nginx"
        (rule,) = ingress["spec"]["rules"]
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == name.removesuffix("-otlp")
            ports = {p["name"] for p in _one(objects, "Service", backend["name"])["spec"]["ports"]}
            assert backend["port"]["name"] in ports
        if overlay == "prod":
            assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]
    stream = ingresses["logriver-stream"]["metadata"]["annotations"]
    assert stream["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(stream["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(stream["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600


def _routed(ingress: Obj, path: str) -> bool:
    """Whether a request for ``path`` matches a rule (Kubernetes Prefix/Exact semantics)."""
    for rule in ingress["spec"]["rules"]:
        for item in rule["http"]["paths"]:
            pattern, kind = item["path"], item["pathType"]
            assert kind in ("Prefix", "Exact"), f"{kind}: can't reason about it"
            if kind == "Exact" and path == pattern:
                return True
            if kind == "Prefix":
                prefix = [p for p in pattern.split("/") if p]
                if [p for p in path.split("/") if p][: len(prefix)] == prefix:
                    return True
    return False


def test_the_route_matcher_follows_kubernetes_path_semantics() -> None:
    ingress = {
        "spec": {
            "rules": [
                {
                    "http": {
                        "paths": [
                            {"path": "/v1", "pathType": "Prefix"},
                            {"path": "/", "pathType": "Exact"},
                        ]
                    }
                }
            ]
        }
    }
    assert _routed(ingress, "/v1/logs")
    assert _routed(ingress, "/v1")
    assert _routed(ingress, "/")
    assert not _routed(ingress, "/v10")
    assert not _routed(ingress, "/metrics")
    assert _routed(
        {"spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix"}]}}]}},
        "/metrics",
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_public_api_is_routed(overlay: str) -> None:
    """No /metrics, /docs, health or OpenAPI path of a logriver service is public;
    the APIs and every console file are; Jaeger's UI needs a password."""
    ingresses = {i["metadata"]["name"]: i for i in _find(render(overlay), "Ingress")}
    for name, ingress in ingresses.items():
        if name == "jaeger":
            continue
        for path in PRIVATE_PATHS:
            assert not _routed(ingress, path), f"{name} routes {path}"
    assert _routed(ingresses["logriver-ingest"], "/v1/logs")
    assert _routed(ingresses["logriver-stream"], "/v1/stream")
    assert _routed(ingresses["logriver-stream"], "/v1/ws")
    assert _routed(ingresses["logriver-query"], "/v1/logs")
    assert _routed(ingresses["logriver-query"], "/")
    for file in CONSOLE_DIR.iterdir():
        assert _routed(ingresses["logriver-query"], f"/{file.name}"), f"console {file.name}"
    otlp = ingresses["logriver-ingest-otlp"]
    assert _routed(otlp, "/opentelemetry.proto.collector.logs.v1.LogsService/Export")
    assert otlp["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC"
    jaeger = ingresses["jaeger"]
    annotations = jaeger["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/auth-type"] == "basic"
    secret = annotations["nginx.ingress.kubernetes.io/auth-secret"]
    assert _find(render("base"), "Secret", secret), "no template for the htpasswd Secret"
    (path,) = jaeger["spec"]["rules"][0]["http"]["paths"]
    assert path["backend"]["service"]["port"]["name"] == "ui"  # never OTLP or metrics
    host = jaeger["spec"]["rules"][0]["host"]
    objects = render(overlay)
    # The console's trace view (where alert messages link) links on to that Ingress.
    scheme = "https" if overlay == "prod" else "http"
    query = _config_values(objects, "logriver-query")
    assert query["LOGRIVER_QUERY_JAEGER_UI_URL"] == f"{scheme}://{host}"


# --- environment ------------------------------------------------------------------


def _container_env(objects: tuple[Obj, ...], workload: str) -> dict[str, tuple[str, Obj]]:
    """Name -> (where it comes from, the source) for the workload's container."""
    service = workload
    deployment = _one(objects, "Deployment", f"logriver-{workload}")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, tuple[str, Obj]] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, "secrets come in one by one (secretKeyRef)"
        config_map = _one(objects, "ConfigMap", source["configMapRef"]["name"])
        for key in config_map["data"]:
            assert key not in env, f"{service}: {key} set twice"
            env[key] = ("configmap", config_map)
    for item in container.get("env", []):
        assert item["name"] not in env, f"{service}: {item['name']} set twice"
        if "value" in item:
            env[item["name"]] = ("value", item)
        else:
            (kind,) = item["valueFrom"]
            env[item["name"]] = (kind, item["valueFrom"][kind])
    return env


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("workload", WORKLOADS)
def test_every_variable_the_code_reads_is_set_and_nothing_else(overlay: str, workload: str) -> None:
    objects = render(overlay)
    service = WORKLOADS[workload]
    env = _container_env(objects, workload)
    missing = envvars.required(service) - set(env)
    assert not missing, f"{overlay}/{service} reads but the manifests do not set: {sorted(missing)}"
    unread = set(env) - envvars.readable_names(service)
    assert not unread, f"{overlay}/{service} does not read (typo?): {sorted(unread)}"
    values = {
        name: source["data"][name] for name, (kind, source) in env.items() if kind == "configmap"
    }
    prefix = f"LOGRIVER_{service.upper()}_"
    assert values[f"{prefix}HOST"] == "0.0.0.0"
    assert values[f"{prefix}PORT"] == str(envvars.PORTS[service])
    assert values["LOGRIVER_MODE"] == ("production" if overlay == "prod" else "local")
    if workload == "relay":
        assert values["LOGRIVER_INGEST_RELAY_PORT"] == str(envvars.RELAY_PORT)
    for name in envvars.secrets(service):
        if name == "LOGRIVER_KAFKA_SASL_PASSWORD" and workload not in KAFKA_CLIENTS:
            continue
        kind, ref = env[name]
        assert kind == "secretKeyRef", f"{workload}: secret {name} comes from {kind}"
        _check_secret_ref(objects, overlay, ref)
    if workload in KAFKA_CLIENTS:
        # Its own KafkaUser, and the CA that verifies the brokers.
        assert env["LOGRIVER_KAFKA_SASL_USERNAME"][1]["value"] == f"logriver-{workload}"
        assert env["LOGRIVER_KAFKA_SASL_PASSWORD"][1]["name"] == f"logriver-{workload}"
        deployment = _one(objects, "Deployment", f"logriver-{workload}")
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        cafile = values["LOGRIVER_KAFKA_SSL_CAFILE"]
        mount = next(
            m for m in container["volumeMounts"] if cafile.startswith(m["mountPath"] + "/")
        )
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        (kafka,) = _find(objects, "Kafka")
        assert volume["secret"]["secretName"] == f"{kafka['metadata']['name']}-cluster-ca-cert"
        assert cafile.endswith("/" + volume["secret"]["items"][0]["path"])


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("workload", WORKLOADS)
def test_the_settings_class_accepts_the_rendered_environment(
    overlay: str, workload: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up validation passes (in prod: production mode, so no local defaults).

    Secret values are not in the manifests; each gets a stand-in value."""
    objects = render(overlay)
    for key in [k for k in os.environ if k.startswith("LOGRIVER_")]:
        monkeypatch.delenv(key)
    service = WORKLOADS[workload]
    for name, (kind, source) in _container_env(objects, workload).items():
        if kind == "configmap":
            monkeypatch.setenv(name, source["data"][name])
        elif kind == "value":
            monkeypatch.setenv(name, source["value"])
        else:
            monkeypatch.setenv(name, f"stand-in-{source['name']}-{source['key']}")
    settings = envvars.settings_class(service)()
    assert getattr(settings, "mode", None) == ("production" if overlay == "prod" else "local")
    assert getattr(settings, "port", None) == envvars.PORTS[service]
    if workload in KAFKA_CLIENTS:
        kafka = getattr(settings, "kafka")  # noqa: B009 - every Kafka client's settings have it
        assert kafka.security_protocol == "SASL_SSL"
        assert kafka.sasl_username == f"logriver-{workload}"


def _check_secret_ref(objects: tuple[Obj, ...], overlay: str, ref: Obj) -> None:
    (mongodb,) = _find(objects, "MongoDBCommunity")
    operator_made = {
        f"{mongodb['metadata']['name']}-{u['db']}-{u['name']}" for u in mongodb["spec"]["users"]
    }
    if ref["name"] in operator_made:
        # Written by the MongoDB operator, with these keys.
        assert ref["key"] in ("connectionString.standard", "connectionString.standardSrv")
        return
    if _find(objects, "KafkaUser", ref["name"]):
        # Written by Strimzi's user operator for the SCRAM-SHA-512 user.
        assert ref["key"] == "password"
        return
    templates = {s["metadata"]["name"]: s for s in _find(render("base"), "Secret")}
    assert ref["name"] in templates, f"no Secret template for {ref['name']}"
    assert ref["key"] in templates[ref["name"]]["stringData"], ref
    in_overlay = _find(objects, "Secret", ref["name"])
    if overlay == "prod":
        assert not in_overlay, "prod must not ship secret values"
    else:
        (secret,) = in_overlay
        assert secret["stringData"][ref["key"]] != "REPLACE_ME"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_logriver_variable_is_set_outside_the_services(overlay: str) -> None:
    objects = render(overlay)
    every = set().union(*(envvars.readable_names(s) for s in envvars.SERVICES))
    for config_map in _find(objects, "ConfigMap"):
        for key in config_map.get("data", {}):
            if key.startswith("LOGRIVER_"):
                assert key in every, f"{config_map['metadata']['name']}: nobody reads {key}"
    for workload in _workloads(objects):
        if workload["metadata"]["name"].startswith("logriver-"):
            continue
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for item in container.get("env", []):
                assert not item["name"].startswith("LOGRIVER_"), workload["metadata"]["name"]
