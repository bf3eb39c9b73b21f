"""The client installs from the checkout and works with nothing else from this repository.

Builds the wheel and the sdist of libs/client, installs them into fresh virtualenvs
(uv, with its cache), and uses them from outside the repository against the running
gateway on 127.0.0.1:8000: ``logriver --help``, a handler send, and the README's
handler snippet, extracted from README.md by its marker comment (never copied), whose
event must be stored in MongoDB's ``logriver.logs``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from logriver_common.auth import DEV_KEY
from tests.stack import STACK, eventually

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[3]
CLIENT = REPO / "libs" / "client"
README = REPO / "README.md"
GATEWAY = "http://127.0.0.1:8000"  # the shared stack's gateway (make up)
SNIPPET_MARKER = "<!-- test: readme-handler-snippet"


def uv() -> str:
    """The uv binary: ``uv run`` exports it as $UV; otherwise the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "uv is needed to build and install the client (run the tests with uv run)"
    return found


def clean_env() -> dict[str, str]:
    """No trace of the workspace: no virtualenv, no PYTHONPATH, no uv project settings."""
    dropped = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT", "UV_PROJECT_ENVIRONMENT")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env


def run(args: list[str], cwd: Path, timeout: float = 180) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def succeeds(args: list[str], cwd: Path) -> bool:
    done = subprocess.run(
        args, cwd=cwd, env=clean_env(), capture_output=True, timeout=60, check=False
    )
    return done.returncode == 0


def readme_snippet() -> str:
    """The Python block that follows the marker comment in README.md."""
    text = README.read_text()
    at = text.index(SNIPPET_MARKER)
    block = re.search(r"```python\n(.*?)```", text[at:], re.DOTALL)
    assert block is not None, "no python block after the marker"
    assert block.start() < 200, "the marker must sit right before its block"
    return block.group(1)


def make_venv(where: Path, install: str) -> Path:
    """A fresh virtualenv (base interpreter, not the workspace's) with ``install`` in it."""
    base = Path(sys.base_prefix) / "bin" / "python3"
    run([uv(), "venv", "--quiet", "--python", str(base), str(where)], cwd=where.parent)
    python = where / "bin" / "python"
    run([uv(), "pip", "install", "--quiet", "--python", str(python), install], cwd=where.parent)
    return python


def stats_after(python: Path, code: str, cwd: Path) -> dict[str, Any]:
    """Run ``code`` with ``python`` and return the stats of its ``handler`` once flushed."""
    check = (
        "\nimport dataclasses as _dc, json as _json\n"
        "assert handler.flush(30)\n"
        "print(_json.dumps(_dc.asdict(handler.stats())))\n"
    )
    out = run([str(python), "-c", code + check], cwd=cwd, timeout=60)
    stats: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return stats


async def stored(query: dict[str, Any], count: int) -> list[dict[str, Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri)
    try:
        logs = client["logriver"]["logs"]

        async def probe() -> list[dict[str, Any]] | None:
            docs = await logs.find(query).to_list(None)
            return docs if len(docs) >= count else None

        return await eventually(probe, within=60, interval=0.3, what=f"{count} stored: {query}")
    finally:
        await client.close()


async def test_wheel_and_sdist_install_into_clean_venvs_and_work(
    stack: None, unique: str, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    run([uv(), "build", "--quiet", "--out-dir", str(dist), str(CLIENT)], cwd=tmp_path)
    wheel = next(dist.glob("logriver_client-*.whl"))
    sdist = next(dist.glob("logriver_client-*.tar.gz"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert "logriver_client/shipper/timestamps.py" in names
    requires = [line for line in metadata.decode().splitlines() if line.startswith("Requires-Dist")]
    assert not [r for r in requires if "logriver" in r], requires  # nothing workspace-only
    with tarfile.open(sdist) as archive:
        assert any(n.endswith("src/logriver_client/handler.py") for n in archive.getnames())

    # The wheel, with both extras resolved from the package index (or uv's cache).
    python = make_venv(tmp_path / "wheel-venv", f"{wheel}[kafka,otel]")
    logriver = tmp_path / "wheel-venv" / "bin" / "logriver"
    assert "ship" in run([str(logriver), "--help"], cwd=tmp_path)
    assert "--time-format" in run([str(logriver), "ship", "--help"], cwd=tmp_path)
    installed = run([uv(), "pip", "freeze", "--python", str(python)], cwd=tmp_path)
    assert "logriver-client" in installed, installed
    assert "aiokafka" in installed, installed  # the kafka extra resolved
    assert not re.search(r"logriver-common|pydantic|fastapi|pymongo", installed), installed
    probe = "import logriver_client, sys; print(logriver_client.__file__)"
    assert str(tmp_path / "wheel-venv") in run([str(python), "-c", probe], cwd=tmp_path)
    assert not succeeds([str(python), "-c", "import logriver_common"], cwd=tmp_path)

    service = f"wheel-{unique}"
    send = (
        "import logging\n"
        "from logriver_client import LogriverHandler\n"
        f"handler = LogriverHandler({GATEWAY!r}, service={service!r}, api_key={DEV_KEY!r})\n"
        "log = logging.getLogger('installed')\n"
        "log.setLevel(logging.INFO)\n"
        "log.addHandler(handler)\n"
        "log.info('from the wheel', extra={'n': 1})\n"
    )
    stats = stats_after(python, send, tmp_path)
    assert (stats["delivered"], stats["rejected"], stats["failed"]) == (1, 0, 0), stats
    [doc] = await stored({"service": service}, 1)
    assert doc["message"] == "from the wheel"
    assert doc["metadata"]["n"] == 1

    # The sdist builds and installs too (what `pip install ./libs/client` does from a path).
    sdist_python = make_venv(tmp_path / "sdist-venv", str(sdist))
    sdist_check = "import logriver_client.shipper.timestamps"
    run([str(sdist_python), "-c", sdist_check], cwd=tmp_path)


async def test_the_readme_handler_snippet_stores_its_event(stack: None, tmp_path: Path) -> None:
    code = readme_snippet()
    assert 'info("paid"' in code  # the snippet this test is about
    started = datetime.now(UTC) - timedelta(seconds=5)
    # As a user would paste it into a fresh interpreter, outside the repository.
    python = make_venv(tmp_path / "venv", str(CLIENT))
    begin = time.monotonic()
    stats = stats_after(python, code, tmp_path)
    assert time.monotonic() - begin < 30
    assert (stats["enqueued"], stats["delivered"], stats["rejected"]) == (1, 1, 0), stats
    docs = await stored(
        {
            "service": "checkout",
            "message": "paid",
            "metadata.order_id": "A-1042",
            "received_at": {"$gte": started},
        },
        1,
    )
    assert docs[0]["level"] == "INFO"
    assert docs[0]["metadata"]["logger"] == "orders"
