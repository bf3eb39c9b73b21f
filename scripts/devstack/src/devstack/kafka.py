"""Apache Kafka 4.x in KRaft mode: one broker that is also the controller.

The jars come from Maven Central through Maven (see resources/kafka-pom.xml);
the broker runs as ``java -cp <libs>/* kafka.Kafka server.properties``.
"""

from __future__ import annotations

import asyncio
import os
import shutil

from devstack import paths, process
from devstack.process import StackError, run

KAFKA_VERSION = "4.1.1"
PORT = int(os.environ.get("LOGRIVER_KAFKA_PORT", "9092"))
CONTROLLER_PORT = PORT + 1
HEAP = os.environ.get("LOGRIVER_KAFKA_HEAP", "-Xmx512m -Xms256m")
# Topics the services need; the broker refuses to auto-create (typos fail loudly).
TOPICS = {"logs.v1": 6, "logs.v1.dlq": 1, "logs.raw.v1": 6}
NAME = "kafka"


def _libs() -> str:
    return str(paths.cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs")


def install() -> None:
    libs = paths.cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return
    if not shutil.which("mvn") or not shutil.which("java"):
        raise StackError(NAME, "needs Java 17 and Maven on PATH")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    run(
        NAME,
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(paths.resource("kafka-pom.xml")),
            f"-Dkafka.version={KAFKA_VERSION}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ],
    )
    tmp.rename(libs)


def _write_config() -> str:
    data = paths.data_dir(NAME)
    config = paths.run_dir() / "kafka-server.properties"
    config.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{CONTROLLER_PORT}",
                f"listeners=PLAINTEXT://127.0.0.1:{PORT},CONTROLLER://127.0.0.1:{CONTROLLER_PORT}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{PORT}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={data}",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=6",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                # Tests create and delete throw-away topics.
                "delete.topic.enable=true",
                # Seven days: the live-tail resume window (see docs/operations.md).
                "log.retention.hours=168",
                # The log cleaner allocates its dedupe map on the heap at start-up: 128 MiB
                # by default, half of a test's private broker (256 MiB heap), which failed
                # to start with OutOfMemoryError in one CI run (2026-11-27). 16 MiB holds
                # offsets for the compacted topics of a local stack (__consumer_offsets).
                "log.cleaner.dedupe.buffer.size=16777216",
                "",
            ]
        )
    )
    return str(config)


def _java(main: str, *args: str, heap: str = "-Xmx256m") -> list[str]:
    return [
        "java",
        *heap.split(),
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={paths.resource('kafka-log4j2.properties')}",
        "-cp",
        f"{_libs()}/*",
        main,
        *args,
    ]


def start() -> None:
    config = _write_config()
    if process.read_pid(NAME) is None:
        if process.port_open(PORT):
            raise StackError(NAME, f"port {PORT} is taken by a process this stack did not start")
        if not (paths.data_dir(NAME) / "meta.properties").exists():
            cluster_id = run(NAME, _java("kafka.tools.StorageTool", "random-uuid")).split()[-1]
            run(NAME, _java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", config))
        process.spawn(NAME, _java("kafka.Kafka", config, heap=HEAP))
    process.wait_until(NAME, lambda: asyncio.run(_metadata_ok()), timeout=90, pid_name=NAME)
    asyncio.run(_ensure_topics())


async def _metadata_ok() -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{PORT}", request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.list_topics()
    except Exception:  # noqa: BLE001 - any failure here means "not ready yet"
        return False
    finally:
        await admin.close()
    return True


async def _ensure_topics() -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{PORT}")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=parts, replication_factor=1)
            for name, parts in TOPICS.items()
            if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


def stop() -> bool:
    return process.stop(NAME, timeout=30)
