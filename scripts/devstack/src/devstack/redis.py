"""Redis from Debian's ``redis-server`` package, on loopback, no persistence."""

from __future__ import annotations

import os

from devstack import apt, paths, process
from devstack.process import StackError

PORT = int(os.environ.get("LOGRIVER_REDIS_PORT", "6379"))
NAME = "redis"


def install() -> None:
    apt.ensure(NAME, "redis-server", ["redis-server"])


def start() -> None:
    if process.read_pid(NAME) is None:
        if process.port_open(PORT):
            raise StackError(NAME, f"port {PORT} is taken by a process this stack did not start")
        process.spawn(
            NAME,
            [
                "redis-server",
                "--port",
                str(PORT),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(paths.data_dir(NAME)),
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory",
                "256mb",
                "--maxmemory-policy",
                "allkeys-lru",
            ],
        )
    process.wait_until(NAME, _ping, timeout=30, pid_name=NAME)


def _ping() -> bool:
    import redis

    try:
        return bool(redis.Redis(port=PORT, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def stop() -> bool:
    return process.stop(NAME)
