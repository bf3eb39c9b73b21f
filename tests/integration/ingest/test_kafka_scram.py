"""A real service against a Kafka listener that requires SCRAM-SHA-512 (as Strimzi's does).

The shared broker on 9092 is never touched: this test starts a private
single-node Kafka (devstack's jars) with a SASL_PLAINTEXT SCRAM-SHA-512 listener
next to a PLAINTEXT one that only the test itself uses (to create topics and
read what arrived). SCRAM users are created at format time
(``kafka-storage format --add-scram``). The gateway gets its settings only from
the environment, as in Kubernetes (LOGRIVER_KAFKA_SECURITY_PROTOCOL, _SASL_*).

Authorization is on, as with Strimzi's ``authorization: simple``, and the ACLs
are those of the prod overlay's KafkaUser resources (rendered with kustomize and
loaded with CreateAcls), so the last test proves the manifests' least-privilege
model on a real broker.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError
from aiokafka.protocol.admin import CreateAclsRequest
from pydantic import SecretStr

from devstack import kafka as devstack_kafka
from devstack import paths
from logriver_common import clients
from logriver_common.settings import KafkaSettings
from tests.conftest import StartService
from tests.integration.deploy.test_kubernetes import render
from tests.integration.ingest.conftest import Keys, read_topic, topic_size
from tests.processes import free_port
from tests.stack import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

# Every KafkaUser of the Kubernetes manifests, with a password for this broker.
USERS = {
    name: f"{name}-scram-password"
    for name in (
        "logriver-ingest",
        "logriver-producer",
        "logriver-relay",
        "logriver-writer",
        "logriver-alerter",
        "logriver-stream",
    )
}
TOPIC = "logs.v1"
TOPICS = {"logs.v1": 3, "logs.raw.v1": 3, "logs.v1.dlq": 1}
# Kafka's wire enums (org.apache.kafka.common.{resource,acl}).
RESOURCE_TYPES = {"topic": 2, "group": 3, "cluster": 4, "transactionalId": 5}
PATTERN_TYPES = {"literal": 3, "prefix": 4}
OPERATIONS = {"All": 2, "Read": 3, "Write": 4, "Create": 5, "Delete": 6, "Alter": 7, "Describe": 8}
ALLOW = 3


def _java(main: str, *args: str, heap: str = "-Xmx256m") -> list[str]:
    libs = paths.cache_dir() / f"kafka-{devstack_kafka.KAFKA_VERSION}" / "libs"
    return [
        "java",
        *heap.split(),
        f"-Dlog4j2.configurationFile={paths.resource('kafka-log4j2.properties')}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


@dataclass
class ScramKafka:
    plain_port: int
    sasl_port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def admin_bootstrap(self) -> str:
        return f"127.0.0.1:{self.plain_port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"


def _config(directory: Path, plain: int, sasl: int, controller: int) -> Path:
    config = directory / "server.properties"
    config.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                f"listeners=PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl},"
                f"CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{plain},"
                f"SASL_PLAINTEXT://127.0.0.1:{sasl}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map="
                "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                # As in Strimzi's `authorization: simple`: no ACL, no access. The
                # PLAINTEXT listener (the test's own admin) is the only super user.
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users=User:ANONYMOUS",
                "allow.everyone.if.no.acl.found=false",
                "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                f"log.dirs={directory / 'data'}",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "",
            ]
        )
    )
    return config


async def _ready(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.list_topics()
    except Exception:  # noqa: BLE001 - any failure here means "not up yet"
        return False
    finally:
        await admin.close()
    return True


def _start_broker(directory: Path) -> ScramKafka:
    """Format the storage with the SCRAM users, then start the broker (blocking)."""
    plain, sasl, controller = free_port(), free_port(), free_port()
    config = _config(directory, plain, sasl, controller)
    cluster_id = subprocess.run(
        _java("kafka.tools.StorageTool", "random-uuid"),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()[-1]
    scram = [
        arg
        for user, password in USERS.items()
        for arg in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]")
    ]
    subprocess.run(
        _java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), *scram),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    log = directory / "kafka.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _java("kafka.Kafka", str(config), heap="-Xmx384m -Xms128m"),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return ScramKafka(plain, sasl, proc, log)


def _stop_broker(broker: ScramKafka) -> None:
    broker.proc.terminate()
    try:
        broker.proc.wait(30)
    except subprocess.TimeoutExpired:
        broker.proc.kill()
        broker.proc.wait(10)


@pytest.fixture(scope="module")
async def scram_kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ScramKafka]:
    """One private broker for this module's tests (each start costs ~20 s of CPU)."""
    broker = await asyncio.to_thread(_start_broker, tmp_path_factory.mktemp("scram-kafka"))
    try:

        async def up() -> bool:
            assert broker.proc.poll() is None, broker.log.read_text()[-3000:]
            return await _ready(broker.admin_bootstrap)

        await eventually(up, within=120, interval=0.5, what="the private SCRAM Kafka")
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.admin_bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in TOPICS.items()]
            )
            await _create_acls(admin, _manifest_acls())
        finally:
            await admin.close()
        yield broker
    finally:
        await asyncio.to_thread(_stop_broker, broker)


def _manifest_acls() -> list[tuple[str, str, str, str, str]]:
    """(user, resource type, name, pattern, operation) of the prod overlay's KafkaUsers."""
    acls = []
    for user in render("prod"):
        if user["kind"] != "KafkaUser":
            continue
        for acl in user["spec"]["authorization"]["acls"]:
            resource = acl["resource"]
            for operation in acl["operations"]:
                acls.append(
                    (
                        user["metadata"]["name"],
                        resource["type"],
                        resource["name"],
                        resource.get("patternType", "literal"),
                        operation,
                    )
                )
    assert {a[0] for a in acls} == set(USERS)
    return acls


async def _create_acls(
    admin: AIOKafkaAdminClient, acls: list[tuple[str, str, str, str, str]]
) -> None:
    """CreateAcls, one binding per request (aiokafka has no ACL API of its own)."""
    client = admin._client
    node = client.get_random_node()
    for user, kind, name, pattern, operation in acls:
        request = CreateAclsRequest(
            RESOURCE_TYPES[kind],
            name,
            PATTERN_TYPES[pattern],
            f"User:{user}",
            "*",
            OPERATIONS[operation],
            ALLOW,
        )
        response = await client.send(node, request)
        for result in response.creation_responses:
            assert result[0] == 0, (user, kind, name, operation, result)


def _gateway_env(broker: ScramKafka, user: str, password: str) -> dict[str, str]:
    return {
        "LOGRIVER_KAFKA_BOOTSTRAP_SERVERS": broker.sasl_bootstrap,
        "LOGRIVER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "LOGRIVER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "LOGRIVER_KAFKA_SASL_USERNAME": user,
        "LOGRIVER_KAFKA_SASL_PASSWORD": password,
        "LOGRIVER_KAFKA_TOPIC": TOPIC,
        "LOGRIVER_INGEST_API_KEY_CACHE_TTL_S": "5",
        "LOGRIVER_INGEST_PUBLISH_DEADLINE_S": "5",
        "LOGRIVER_OTEL_ENABLED": "false",
    }


async def test_the_gateway_publishes_over_scram_with_its_credentials(
    scram_kafka: ScramKafka, service_process: StartService, keys: Keys, unique: str
) -> None:
    gateway = service_process(
        "ingest", env=_gateway_env(scram_kafka, "logriver-ingest", USERS["logriver-ingest"])
    )
    events = [{"id": f"scram-{unique}-{i}", "service": "scram", "message": "m"} for i in range(20)]
    auth = {"Authorization": f"Bearer {keys.ingest}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=auth, timeout=30) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        response = await http.post("/v1/logs", json=events)
        assert response.status_code == 202, response.text
    records = await read_topic(TOPIC, expect=len(events), bootstrap=scram_kafka.admin_bootstrap)
    assert {orjson.loads(r.value)["id"] for r in records} == {e["id"] for e in events}
    assert "SaslAuthenticationFailed" not in gateway.tail(300)


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("logriver-ingest", "wrong-password"),
        ("nobody", USERS["logriver-ingest"]),
        ("logriver-producer", USERS["logriver-ingest"]),
        ("logriver-ingest", ""),
    ],
)
async def test_the_gateway_is_refused_with_wrong_credentials(
    scram_kafka: ScramKafka, service_process: StartService, user: str, password: str
) -> None:
    """The producer cannot authenticate, so the gateway never starts serving."""
    before = await topic_size(TOPIC, bootstrap=scram_kafka.admin_bootstrap)
    gateway = service_process("ingest", env=_gateway_env(scram_kafka, user, password), wait=False)

    async def exited() -> bool:
        return not gateway.running()

    await eventually(exited, within=90, interval=0.5, what="the gateway to give up")
    assert gateway.proc is not None
    assert gateway.proc.returncode != 0
    tail = gateway.tail(300)
    if password:
        assert "Application startup failed" in tail, tail
        # Refused by the broker (its SaslAuthenticate answer, as the gateway logged it).
        assert "SaslAuthenticationFailed" in tail, tail
        assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in tail, tail
    else:
        # Refused before connecting: SASL without a password is a settings error.
        assert "LOGRIVER_KAFKA_SASL_PASSWORD" in tail, tail
    assert await topic_size(TOPIC, bootstrap=scram_kafka.admin_bootstrap) == before


def _settings(broker: ScramKafka, user: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=broker.sasl_bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=user,
        sasl_password=SecretStr(USERS[user]),
        request_timeout_ms=5000,
    )


async def _can_write(broker: ScramKafka, user: str, topic: str) -> bool:
    producer = clients.kafka_producer(_settings(broker, user))
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, b"{}", key=b"acl"), 15)
    except TopicAuthorizationFailedError:
        return False
    finally:
        await producer.stop()
    return True


async def _can_read(broker: ScramKafka, user: str, topic: str, group: str | None) -> bool:
    """Whether ``user`` receives ``topic``'s records (the topic holds at least one),
    assigned partition 0 (no group) or subscribed in ``group``. A denied read either
    fails with an authorization error or never sees the topic (unauthorized topics
    are hidden from metadata): nothing within 10 s (an allowed read takes ~1 s)."""
    consumer = clients.kafka_consumer(_settings(broker, user), group_id=group)
    await consumer.start()
    try:
        if group is None:
            consumer.assign([TopicPartition(topic, 0)])
        else:
            consumer.subscribe([topic])
        deadline = asyncio.get_running_loop().time() + 10
        while asyncio.get_running_loop().time() < deadline:
            batches = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
            if any(batches.values()):
                return True
        return False
    except (TopicAuthorizationFailedError, GroupAuthorizationFailedError):
        return False
    finally:
        await consumer.stop()


# (user, topic, allowed) straight from the architecture (docs/operations.md, "Kafka security").
WRITES = [
    ("logriver-producer", "logs.raw.v1", True),
    ("logriver-producer", "logs.v1", False),
    ("logriver-producer", "logs.v1.dlq", False),
    ("logriver-relay", "logs.v1", True),
    ("logriver-ingest", "logs.v1", True),
    ("logriver-ingest", "logs.raw.v1", False),
    ("logriver-writer", "logs.v1.dlq", True),
    ("logriver-writer", "logs.v1", False),
    ("logriver-stream", "logs.v1", False),
    ("logriver-alerter", "logs.v1", False),
]
READS = [
    ("logriver-relay", "logs.raw.v1", "relay", True),
    ("logriver-relay", "logs.raw.v1", "writer", False),
    ("logriver-writer", "logs.v1", "writer", True),
    ("logriver-writer", "logs.v1", "alerter", False),
    ("logriver-writer", "logs.raw.v1", "writer", False),
    ("logriver-alerter", "logs.v1", "alerter", True),
    ("logriver-stream", "logs.v1", None, True),
    ("logriver-stream", "logs.raw.v1", None, False),
    ("logriver-producer", "logs.raw.v1", None, False),
    ("logriver-ingest", "logs.v1", None, False),
]


async def test_the_manifests_acls_enforce_the_trust_boundary_on_a_real_broker(
    scram_kafka: ScramKafka,
) -> None:
    """The prod overlay's KafkaUser ACLs, loaded into a broker with authorization on:
    producers write only the raw topic, only the door writes logs.v1, each consumer
    reads only its topic in its own group."""
    seed = AIOKafkaProducer(bootstrap_servers=scram_kafka.admin_bootstrap)  # super user
    await seed.start()
    try:
        for topic in TOPICS:
            await seed.send_and_wait(topic, b"{}", partition=0)
    finally:
        await seed.stop()
    for user, topic, allowed in WRITES:
        assert await _can_write(scram_kafka, user, topic) is allowed, (user, "write", topic)
    for user, topic, group, allowed in READS:
        got = await _can_read(scram_kafka, user, topic, group)
        assert got is allowed, (user, "read", topic, group)
