"""docker-compose.yml: schema-valid, healthy ordering, and the environment the code reads."""

from __future__ import annotations

import copy
import os
import re
from typing import Any

import jsonschema
import pytest

from tests.unit.deploy import envvars
from tests.unit.deploy.conftest import ROOT, compose_schema

INFRA_IMAGES = {
    "kafka": "apache/kafka:4.1.1",
    "kafka-init": "apache/kafka:4.1.1",
    "mongo1": "mongo:6.0",
    "mongo2": "mongo:6.0",
    "mongo3": "mongo:6.0",
    "mongo-init": "mongo:6.0",
    "redis": "redis:7",
    "postgres": "postgres:15",
    "jaeger": "jaegertracing/jaeger:2.13.0",
}
INIT_JOBS = {"kafka-init", "mongo-init"}
# Compose services that run a logriver image -> the service whose settings they read.
APPS = {**{s: s for s in envvars.SERVICES}, "relay": "ingest"}


def _schema_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    assert _schema_errors(compose) == []


def test_schema_validation_catches_mistakes(compose: dict[str, Any]) -> None:
    """The bundled schema really checks services (so the test above can fail)."""
    broken = copy.deepcopy(compose)
    broken["services"]["ingest"]["helthcheck"] = broken["services"]["ingest"].pop("healthcheck")
    broken["services"]["writer"]["depends_on"]["kafka-init"]["condition"] = "service_ready"
    errors = _schema_errors(broken)
    assert any("helthcheck" in e for e in errors), errors
    assert any("service_ready" in e for e in errors), errors


def test_images_match_the_local_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == set(INFRA_IMAGES) | set(APPS)
    for name, image in INFRA_IMAGES.items():
        assert services[name]["image"] == image, name
    for app, name in APPS.items():
        assert services[app]["image"] == f"logriver-{name}:local"
        build = services[app]["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == "Dockerfile"
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()
        assert build["args"] == {"SERVICE": name}


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check is not None, f"{name} has no healthcheck"
        if name in INIT_JOBS:
            # One-shot jobs: nothing to probe; dependants wait for their exit code.
            assert check == {"disable": True}, name
            assert service["restart"] == "no", name
            continue
        assert not check.get("disable", False), name
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert len(check["test"]) > 1, name
        assert {"interval", "timeout", "retries"} <= set(check), name


def test_dependencies_wait_for_health_or_completion(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            expected = "service_completed_successfully" if dep in INIT_JOBS else "service_healthy"
            assert spec["condition"] == expected, f"{name} -> {dep}"
    # Every app service waits for exactly the infrastructure its settings point at.
    needs = {
        "LOGRIVER_KAFKA_BOOTSTRAP_SERVERS": "kafka-init",
        "LOGRIVER_MONGO_URI": "mongo-init",
        "LOGRIVER_REDIS_URL": "redis",
        "LOGRIVER_POSTGRES_DSN": "postgres",
        "LOGRIVER_OTEL_ENDPOINT": "jaeger",
    }
    for app, name in APPS.items():
        reads = envvars.readable_names(name)
        expected_deps = {dep for var, dep in needs.items() if var in reads}
        assert set(services[app]["depends_on"]) == expected_deps, app
    assert set(services["mongo-init"]["depends_on"]) == {"mongo1", "mongo2", "mongo3"}
    # `docker compose up --wait` accepts a one-shot job's exit only when a
    # long-running service waits for it to complete (README quick start).
    for job in INIT_JOBS:
        adopters = [n for n in envvars.SERVICES if job in services[n].get("depends_on", {})]
        assert adopters, f"no long-running service waits for {job}"
    assert set(services["kafka-init"]["depends_on"]) == {"kafka"}


def test_data_lives_in_named_volumes_and_every_container_is_limited(
    compose: dict[str, Any],
) -> None:
    declared = set(compose["volumes"])
    data_paths = {
        "kafka": "/var/lib/kafka/data",
        "mongo1": "/data/db",
        "mongo2": "/data/db",
        "mongo3": "/data/db",
        "postgres": "/var/lib/postgresql/data",
        "jaeger": "/badger",
    }
    used: set[str] = set()
    for name, path in data_paths.items():
        mounts = [m.split(":") for m in compose["services"][name]["volumes"]]
        named = [src for src, dst, *_ in mounts if dst == path and not src.startswith(".")]
        assert named, f"{name}: nothing mounted at {path}"
        assert named[0] in declared, f"{name}: {path} is not a named volume"
        used.add(named[0])
    assert used == declared
    for name, service in compose["services"].items():
        if name in INIT_JOBS:
            continue
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0, name
        assert re.fullmatch(r"\d+[MG]", limits["memory"]), name


def test_kafka_matches_the_local_stack(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_LOG_RETENTION_HOURS"] == 168
    script = compose["services"]["kafka-init"]["command"][0]
    created = dict(re.findall(r"--topic (\S+) --partitions (\d+)", script))
    assert created == {"logs.v1": "6", "logs.v1.dlq": "1", "logs.raw.v1": "6"}
    for app in APPS:
        env = compose["services"][app]["environment"]
        if "LOGRIVER_KAFKA_BOOTSTRAP_SERVERS" in env:
            assert env["LOGRIVER_KAFKA_RAW_TOPIC"] == "logs.raw.v1", app


def test_mongo_is_a_three_member_replica_set(compose: dict[str, Any]) -> None:
    for name in ("mongo1", "mongo2", "mongo3"):
        command = compose["services"][name]["command"]
        assert command[command.index("--replSet") + 1] == "rs0"
    script = compose["services"]["mongo-init"]["command"][0]
    assert sorted(re.findall(r'host: "(mongo\d):27017"', script)) == ["mongo1", "mongo2", "mongo3"]
    uri = compose["services"]["writer"]["environment"]["LOGRIVER_MONGO_URI"]
    assert uri == "mongodb://mongo1:27017,mongo2:27017,mongo3:27017/?replicaSet=rs0"


@pytest.mark.parametrize("app", APPS)
def test_service_environment_matches_what_the_code_reads(
    compose: dict[str, Any], app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = APPS[app]
    env = compose["services"][app]["environment"]
    assert isinstance(env, dict)
    missing = envvars.required(service) - set(env)
    if app == "relay":
        missing.discard("LOGRIVER_INGEST_PORT")  # the gateway's port; the relay binds RELAY_PORT
    assert not missing, f"{app} reads but compose does not set: {sorted(missing)}"
    unread = set(env) - envvars.readable_names(service)
    assert not unread, f"{service} does not read (typo?): {sorted(unread)}"
    prefix = f"LOGRIVER_{service.upper()}_"
    assert env[f"{prefix}HOST"] == "0.0.0.0"
    if app == "relay":
        port = str(envvars.RELAY_PORT)
        assert env[f"{prefix}RELAY_PORT"] == port
        assert compose["services"][app]["command"] == ["python", "-m", "logriver_ingest", "relay"]
        assert f":{port}/healthz" in " ".join(compose["services"][app]["healthcheck"]["test"])
    else:
        port = str(envvars.PORTS[service])
        assert env[f"{prefix}PORT"] == port
    published = [f"127.0.0.1:{port}:{port}"]
    if app == "ingest":  # OTLP/gRPC logs beside the HTTP API
        assert env["LOGRIVER_INGEST_GRPC_PORT"] == "4319"
        published.append("127.0.0.1:4319:4319")
    assert compose["services"][app]["ports"] == published
    # Connections point at the compose services, never at the local stack's loopback.
    for name, value in env.items():
        if name in envvars.required(service) and name.endswith(envvars.CONNECTION_SUFFIXES):
            if name.endswith(("_JAEGER_UI_URL", "_BASE_URL")):
                continue  # links opened by the user's browser on the host
            assert "127.0.0.1" not in str(value), f"{service}: {name}={value}"
    # The settings class accepts these values (production checks included).
    settings_cls = envvars.settings_class(service)
    resolved = {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in env.items()}
    for key in [k for k in os.environ if k.startswith("LOGRIVER_")]:
        monkeypatch.delenv(key)
    for key, value in resolved.items():
        monkeypatch.setenv(key, value)
    settings = settings_cls()
    port_field = "relay_port" if app == "relay" else "port"
    assert getattr(settings, port_field, None) == int(port)
