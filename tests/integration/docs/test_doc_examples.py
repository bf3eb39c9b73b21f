"""Every shell and Python block in README.md and docs/*.md runs as pasted, on the local stack.

Shell blocks run with `bash -euo pipefail` from the repository root, with the repo
venv's `bin` first on PATH (so `python` and `logriver` are this checkout's); `curl`
is wrapped with `--fail-with-body`, so an example whose request is refused (a 4xx
printed to the terminal) fails here too. Python blocks run with the venv's
interpreter. A block that must not run carries an explicit marker comment (see
doc_blocks.py); nothing is skipped silently.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from logriver_common.auth import DEV_KEY
from tests.integration.docs.doc_blocks import PYTHON, ROOT, Block, all_blocks

pytestmark = [pytest.mark.integration]

TIMEOUT_S = 30.0
SERVICE_PORTS = (8000, 8001, 8002, 8003, 8004, 8005)
CURL_FAILS_LOUDLY = 'curl() { command curl --fail-with-body "$@"; }\n'
ALERTER = "http://127.0.0.1:8003"
BLOCKS = [block for block in all_blocks() if block.runs]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module", autouse=True)
def services_up() -> None:
    down = [port for port in SERVICE_PORTS if not _port_open(port)]
    assert not down, f"the local stack's services are not listening on {down}: run `make up`"


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["LOGRIVER_API_KEY"] = DEV_KEY
    env.pop("VIRTUAL_ENV", None)
    return env


class AlerterExamples:
    """Alert examples create a channel and a rule on the shared stack: remove them before
    (a second run would get a 409) and after (they must not fire on others' tests)."""

    def __init__(self, code: str) -> None:
        self.rules = set(re.findall(r'"name":\s*"([^"]+)"', code))
        self.channels = set(re.findall(r"/v1/channels/([\w.-]+)", code))

    def clean(self) -> None:
        if not self.rules and not self.channels:
            return
        headers = {"Authorization": f"Bearer {DEV_KEY}"}
        with httpx.Client(base_url=ALERTER, headers=headers, timeout=10) as client:
            for rule in client.get("/v1/rules").raise_for_status().json()["rules"]:
                if rule["name"] in self.rules:
                    client.delete(f"/v1/rules/{rule['id']}").raise_for_status()
            for name in self.channels:
                resp = client.delete(f"/v1/channels/{name}")
                assert resp.status_code in (204, 404), resp.text


def _run(block: Block) -> subprocess.CompletedProcess[str]:
    if block.lang in PYTHON:
        argv = [sys.executable, "-c", block.code]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", CURL_FAILS_LOUDLY + block.code]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    limit = block.stream_seconds or TIMEOUT_S
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        if block.stream_seconds is None:
            pytest.fail(f"{block.name} still running after {limit}s:\n{out}\n{err}")
        assert out.strip(), f"{block.name} streamed nothing in {limit}s; stderr:\n{err}"
        return subprocess.CompletedProcess(argv, 0, out, err)
    if block.stream_seconds is not None:
        pytest.fail(f"{block.name} should stream but ended (exit {proc.returncode}):\n{out}\n{err}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_documented_example_runs(block: Block) -> None:
    if block.skip:
        pytest.skip(f"marked in the document: {block.skip}")
    alerter = AlerterExamples(block.code if ":8003" in block.code else "")
    alerter.clean()
    try:
        result = _run(block)
    finally:
        alerter.clean()
    assert result.returncode == 0, (
        f"{block.name} failed (exit {result.returncode}):\n--- code\n{block.code}"
        f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
