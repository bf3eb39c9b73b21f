"""deploy/k8s, rendered: who may touch which Kafka topic, and who may talk to whom.

Kafka ACLs are read from the KafkaUser resources and checked against the
architecture's flows (issues 13 and 19): producers write only the raw topic,
only the gateway and the relay write logs.v1, each consumer reads its own topic
in its own group. NetworkPolicies are evaluated with a small model of the
Kubernetes semantics (same namespace, TCP) for the flows that must work and for
flows that must not.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.deploy.test_kubernetes import OVERLAYS, _find, _one, render

Obj = dict[str, Any]

RAW, MAIN, DLQ = "logs.raw.v1", "logs.v1", "logs.v1.dlq"
# user -> {(resource type, name, operation)} exactly.
EXPECTED_ACLS: dict[str, set[tuple[str, str, str]]] = {
    "logriver-producer": {("topic", RAW, "Write"), ("topic", RAW, "Describe")},
    "logriver-relay": {
        ("topic", RAW, "Read"),
        ("topic", RAW, "Describe"),
        ("group", "relay", "Read"),
        ("topic", MAIN, "Write"),
        ("topic", MAIN, "Describe"),
        ("topic", DLQ, "Write"),
        ("topic", DLQ, "Describe"),
    },
    "logriver-ingest": {
        ("topic", MAIN, "Write"),
        ("topic", MAIN, "Describe"),
        ("topic", DLQ, "Write"),
        ("topic", DLQ, "Describe"),
    },
    "logriver-writer": {
        ("topic", MAIN, "Read"),
        ("topic", MAIN, "Describe"),
        ("group", "writer", "Read"),
        ("topic", DLQ, "Write"),
        ("topic", DLQ, "Describe"),
    },
    "logriver-alerter": {
        ("topic", MAIN, "Read"),
        ("topic", MAIN, "Describe"),
        ("group", "alerter", "Read"),
        ("topic", DLQ, "Write"),
        ("topic", DLQ, "Describe"),
    },
    "logriver-stream": {("topic", MAIN, "Read"), ("topic", MAIN, "Describe")},
}


def _acls(user: Obj) -> set[tuple[str, str, str]]:
    found: set[tuple[str, str, str]] = set()
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        # Literal names only: a prefix or wildcard would reach topics nobody reviewed.
        assert resource.get("patternType", "literal") == "literal", acl
        assert "*" not in resource["name"], acl
        assert acl.get("type", "allow") == "allow", acl
        for operation in acl["operations"]:
            found.add((resource["type"], resource["name"], operation))
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_kafka_user_has_exactly_its_acls(overlay: str) -> None:
    objects = render(overlay)
    (kafka,) = _find(objects, "Kafka")
    users = {u["metadata"]["name"]: u for u in _find(objects, "KafkaUser")}
    assert set(users) == set(EXPECTED_ACLS)
    for name, user in users.items():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert user["spec"]["authorization"]["type"] == "simple"
        assert _acls(user) == EXPECTED_ACLS[name], name
    topics = {t["spec"]["topicName"] for t in _find(objects, "KafkaTopic")}
    named = {n for acls in EXPECTED_ACLS.values() for kind, n, _ in acls if kind == "topic"}
    assert named <= topics, "an ACL names a topic that does not exist"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_door_writes_logs_v1_and_producers_write_only_the_raw_topic(
    overlay: str,
) -> None:
    users = {u["metadata"]["name"]: _acls(u) for u in _find(render(overlay), "KafkaUser")}
    writers = {name for name, acls in users.items() if ("topic", MAIN, "Write") in acls}
    assert writers == {"logriver-ingest", "logriver-relay"}
    raw_readers = {name for name, acls in users.items() if ("topic", RAW, "Read") in acls}
    assert raw_readers == {"logriver-relay"}
    assert {(k, n) for k, n, op in users["logriver-producer"] if op != "Describe"} == {
        ("topic", RAW)
    }
    # No user may alter topics, ACLs or the cluster.
    for name, acls in users.items():
        for kind, _, operation in acls:
            assert kind in ("topic", "group"), name
            assert operation in ("Read", "Write", "Describe"), (name, operation)


def test_the_acl_check_rejects_a_wildcard_or_prefix() -> None:
    user = {
        "spec": {
            "authorization": {
                "acls": [
                    {
                        "resource": {"type": "topic", "name": "logs", "patternType": "prefix"},
                        "operations": ["Write"],
                    }
                ]
            }
        }
    }
    with pytest.raises(AssertionError):
        _acls(user)
    user["spec"]["authorization"]["acls"][0]["resource"] = {"type": "topic", "name": "*"}
    with pytest.raises(AssertionError):
        _acls(user)


# --- NetworkPolicies --------------------------------------------------------------

# Pods that the operators create (not rendered), with the labels they carry.
OPERATOR_PODS = {
    "kafka": {
        "strimzi.io/cluster": "logriver",
        "strimzi.io/kind": "Kafka",
        "strimzi.io/name": "logriver-kafka",
    },
    "entity-operator": {
        "strimzi.io/cluster": "logriver",
        "strimzi.io/kind": "Kafka",
        "strimzi.io/name": "logriver-entity-operator",
    },
    "mongodb": {"app": "logriver-mongodb-svc"},
}
NAMESPACE = {"kubernetes.io/metadata.name": "logriver"}
INGRESS_NGINX = {"kubernetes.io/metadata.name": "ingress-nginx"}
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}
PRODUCERS_NS = {"kubernetes.io/metadata.name": "shop", "logriver.io/kafka-producer": "true"}
OTHER_NS = {"kubernetes.io/metadata.name": "shop"}


@dataclass(frozen=True)
class Peer:
    labels: dict[str, str]
    namespace: dict[str, str]
    ip: str = "10.0.0.10"


def _selects(selector: Obj | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        value = labels.get(expr["key"])
        operator = expr["operator"]
        if operator == "In" and value not in expr["values"]:
            return False
        if operator == "NotIn" and value in expr["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
    return True


def _ip_in(cidr: str, ip: str) -> bool:
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


def _peer_matches(rule_peer: Obj, peer: Peer, policy_namespace: dict[str, str]) -> bool:
    if "ipBlock" in rule_peer:
        block = rule_peer["ipBlock"]
        return _ip_in(block["cidr"], peer.ip) and not any(
            _ip_in(c, peer.ip) for c in block.get("except", [])
        )
    if "namespaceSelector" in rule_peer:
        if not _selects(rule_peer["namespaceSelector"], peer.namespace):
            return False
    elif peer.namespace != policy_namespace:
        return False
    return _selects(rule_peer.get("podSelector"), peer.labels)


def _port_matches(ports: list[Obj] | None, port: int) -> bool:
    if not ports:
        return True
    return any(p.get("protocol", "TCP") == "TCP" and p.get("port") in (None, port) for p in ports)


def _allowed(policies: list[Obj], src: Peer, dst: Peer, port: int) -> bool:
    """Whether a TCP connection src -> dst:port passes both sides' policies."""

    def side(pod: Peer, direction: str, other: Peer) -> bool:
        if pod.namespace != NAMESPACE:
            return True  # not governed by these policies
        key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        selecting = [
            p
            for p in policies
            if direction in p["spec"]["policyTypes"]
            and _selects(p["spec"]["podSelector"], pod.labels)
        ]
        if not selecting:
            return True
        for policy in selecting:
            for rule in policy["spec"].get(key, []):
                if not _port_matches(rule.get("ports"), port):
                    continue
                rule_peers = rule.get(peers)
                if not rule_peers or any(_peer_matches(rp, other, NAMESPACE) for rp in rule_peers):
                    return True
        return False

    return side(src, "Egress", dst) and side(dst, "Ingress", src)


def _pods(objects: tuple[Obj, ...]) -> dict[str, Peer]:
    pods = {
        w["metadata"]["name"]: Peer(w["spec"]["template"]["metadata"]["labels"], NAMESPACE)
        for w in objects
        if w["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob")
    }
    pods.update({name: Peer(labels, NAMESPACE) for name, labels in OPERATOR_PODS.items()})
    return pods


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_default_deny_and_every_pod_has_its_own_policy(overlay: str) -> None:
    objects = render(overlay)
    policies = _find(objects, "NetworkPolicy")
    deny = _one(objects, "NetworkPolicy", "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for name, pod in _pods(objects).items():
        own = [
            p
            for p in policies
            if p["spec"]["podSelector"] and _selects(p["spec"]["podSelector"], pod.labels)
        ]
        assert own, f"no NetworkPolicy selects the pods of {name}"
        for policy in own:
            assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}, policy


FLOWS_ALLOWED = [
    # (source, destination, port)
    ("ingress-nginx", "logriver-ingest", 8000),
    ("ingress-nginx", "logriver-ingest", 4319),
    ("ingress-nginx", "logriver-query", 8001),
    ("ingress-nginx", "logriver-stream", 8002),
    ("ingress-nginx", "jaeger", 16686),
    ("monitoring", "logriver-ingest", 8000),
    ("monitoring", "logriver-relay", 8005),
    ("monitoring", "logriver-query", 8001),
    ("monitoring", "logriver-stream", 8002),
    ("monitoring", "logriver-alerter", 8003),
    ("monitoring", "logriver-writer", 8004),
    ("logriver-ingest", "kafka", 9093),
    ("logriver-relay", "kafka", 9093),
    ("logriver-writer", "kafka", 9093),
    ("logriver-alerter", "kafka", 9093),
    ("logriver-stream", "kafka", 9093),
    ("producer", "kafka", 9093),
    ("logriver-writer", "mongodb", 27017),
    ("logriver-query", "mongodb", 27017),
    ("logriver-alerter", "mongodb", 27017),
    ("mongodb", "mongodb", 27017),
    ("kafka", "kafka", 9091),
    ("logriver-writer", "jaeger", 4317),
    ("logriver-ingest", "jaeger", 4317),
    ("logriver-alerter", "webhook", 443),
]
FLOWS_DENIED = [
    ("ingress-nginx", "logriver-alerter", 8003),
    ("ingress-nginx", "logriver-writer", 8004),
    ("ingress-nginx", "logriver-relay", 8005),
    ("ingress-nginx", "jaeger", 4317),
    ("ingress-nginx", "kafka", 9093),
    ("other-namespace", "kafka", 9093),
    ("other-namespace", "logriver-ingest", 8000),
    ("other-namespace", "mongodb", 27017),
    ("logriver-query", "kafka", 9093),
    ("logriver-ingest", "mongodb", 27017),
    ("logriver-stream", "mongodb", 27017),
    ("logriver-ingest", "kafka", 9092),
    ("logriver-writer", "webhook", 443),
    ("logriver-alerter", "metadata", 80),
    ("logriver-alerter", "private", 443),
    ("jaeger", "kafka", 9093),
    ("logriver-query", "logriver-ingest", 8000),
]


def _peer(name: str, pods: dict[str, Peer]) -> Peer:
    outside = {
        "ingress-nginx": Peer({"app.kubernetes.io/name": "ingress-nginx"}, INGRESS_NGINX),
        "monitoring": Peer({"app.kubernetes.io/name": "prometheus"}, MONITORING),
        "producer": Peer({"app": "shop"}, PRODUCERS_NS),
        "other-namespace": Peer({"app": "shop"}, OTHER_NS),
        "webhook": Peer({}, {"external": "true"}, ip="140.82.112.3"),
        "metadata": Peer({}, {"external": "true"}, ip="169.254.169.254"),
        "private": Peer({}, {"external": "true"}, ip="10.1.2.3"),
    }
    return outside[name] if name in outside else pods[name]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_flows_the_architecture_needs_and_no_others(overlay: str) -> None:
    objects = render(overlay)
    policies = _find(objects, "NetworkPolicy")
    pods = _pods(objects)
    for src, dst, port in FLOWS_ALLOWED:
        assert _allowed(policies, _peer(src, pods), _peer(dst, pods), port), (src, dst, port)
    for src, dst, port in FLOWS_DENIED:
        assert not _allowed(policies, _peer(src, pods), _peer(dst, pods), port), (src, dst, port)
    if overlay == "dev":
        assert _allowed(policies, pods["logriver-ingest"], pods["redis"], 6379)
        assert _allowed(policies, pods["logriver-stream"], pods["postgres"], 5432)
        assert not _allowed(policies, pods["logriver-writer"], pods["redis"], 6379)
        assert not _allowed(policies, pods["logriver-writer"], pods["postgres"], 5432)


def test_the_policy_model_denies_without_a_rule() -> None:
    deny = {"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    a = Peer({"app": "a"}, NAMESPACE)
    b = Peer({"app": "b"}, NAMESPACE)
    assert _allowed([], a, b, 80)
    assert not _allowed([deny], a, b, 80)
    allow_out = {
        "spec": {
            "podSelector": {"matchLabels": {"app": "a"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "b"}}}]}],
        }
    }
    assert not _allowed([deny, allow_out], a, b, 80)  # b's ingress still denies
    allow_in = {
        "spec": {
            "podSelector": {"matchLabels": {"app": "b"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "a"}}}], "ports": [{"port": 80}]}
            ],
        }
    }
    assert _allowed([deny, allow_out, allow_in], a, b, 80)
    assert not _allowed([deny, allow_out, allow_in], a, b, 81)
