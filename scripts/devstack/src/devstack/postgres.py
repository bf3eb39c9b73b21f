"""PostgreSQL from Debian's packages: a private cluster on loopback.

PostgreSQL refuses to run as root, so when the stack runs as root the cluster
belongs to the ``postgres`` user and lives under its home (root's home is not
readable by other users).
"""

from __future__ import annotations

import glob
import os
import pwd
import signal
from pathlib import Path

from devstack import apt, paths, process
from devstack.process import StackError, run

PORT = int(os.environ.get("LOGRIVER_POSTGRES_PORT", "5432"))
NAME = "postgres"
USER = "logriver"
PASSWORD = "logriver"  # noqa: S105 - local development stack only
DATABASE = "logriver"
# Private to the stack: the cluster listens on TCP for clients, the socket is for set-up.
SOCKET_DIR = "/tmp"  # noqa: S108


def _bin(tool: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not found:
        raise StackError(NAME, f"{tool} not found under /usr/lib/postgresql")
    return found[-1]


def _run_as() -> str | None:
    return "postgres" if os.geteuid() == 0 else None


def _data() -> Path:
    if _run_as() is None:
        return paths.data_dir(NAME)
    home = Path(pwd.getpwnam("postgres").pw_dir)
    return home / "logriver" / f"port-{PORT}"


def install() -> None:
    apt.ensure(NAME, "/usr/lib/postgresql", ["postgresql"])
    if not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        apt.ensure(NAME, "/nonexistent", ["postgresql"])


def start() -> None:
    data = _data()
    user = _run_as()
    if process.read_pid(NAME) is None:
        if process.port_open(PORT):
            raise StackError(NAME, f"port {PORT} is taken by a process this stack did not start")
        if not (data / "PG_VERSION").exists():
            run(NAME, ["mkdir", "-p", str(data)], user=user)
            run(
                NAME,
                [
                    _bin("initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ],
                user=user,
            )
        process.spawn(
            NAME,
            [
                _bin("postgres"),
                "-D",
                str(data),
                "-p",
                str(PORT),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={SOCKET_DIR}",
                "-c",
                "shared_buffers=64MB",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
            ],
            user=user,
        )
    process.wait_until(NAME, _ready, timeout=60, pid_name=NAME)
    _create_database()


def _psql(sql: str, database: str = "postgres") -> str:
    return run(
        NAME,
        [
            "psql",
            "-h",
            SOCKET_DIR,
            "-p",
            str(PORT),
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-tAc",
            sql,
        ],
        user=_run_as(),
    ).strip()


def _ready() -> bool:
    try:
        _psql("SELECT 1")
    except StackError:
        return False
    return True


def _create_database() -> None:
    # Constants of this module, not input: string-built SQL is safe here.
    role = f"SELECT 1 FROM pg_roles WHERE rolname = '{USER}'"  # noqa: S608
    if _psql(role) != "1":
        _psql(f"CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
    database = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"  # noqa: S608
    if _psql(database) != "1":
        _psql(f"CREATE DATABASE {DATABASE} OWNER {USER}")


def dsn() -> str:
    return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{PORT}/{DATABASE}"


def stop() -> bool:
    # SIGINT is PostgreSQL's "fast" shutdown. SIGTERM ("smart") waits for every
    # client to disconnect, which services holding pools never do; the SIGKILL
    # that follows leaves a postmaster.pid behind and the next start fails.
    return process.stop(NAME, timeout=30, stop_signal=signal.SIGINT)
