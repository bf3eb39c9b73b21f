"""``logriver ship`` against the real gateway: a crash, rotations and a gateway outage
in one run, and every line reaches the topic exactly once (by id)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from logriver_common.auth import DEV_KEY
from tests.conftest import StartService, Topics
from tests.integration.client.conftest import by_id, read_topic, restart_on_same_port
from tests.processes import OUTPUT_DIR
from tests.stack import eventually

pytestmark = [pytest.mark.integration]


def records(prefix: str, count: int) -> list[str]:
    """Log records; every 50th is a three-line stack trace (joined by --multiline-start)."""
    out = []
    for n in range(count):
        if n % 50 == 7:
            out.append(f"r{prefix}{n} ERROR boom\n  at frame one\n  at frame two")
        else:
            out.append(f"r{prefix}{n} INFO payload {n}")
    return out


def append(path: Path, lines: list[str]) -> None:
    with path.open("a") as handle:
        handle.writelines(f"{line}\n" for line in lines)


class ShipCommand:
    def __init__(self, workdir: Path, url: str, service: str) -> None:
        self.workdir = workdir
        self.status = workdir / "status.json"
        self.args = [
            sys.executable, "-m", "logriver_client.cli", "ship", str(workdir / "app.log"),
            "--service", service, "--url", url, "--api-key", DEV_KEY,
            "--checkpoint", str(workdir / "checkpoint.json"), "--status", str(self.status),
            "--multiline-start", r"^r\w+ ", "--multiline-timeout", "0.3",
            "--batch-size", "400", "--batch-wait", "0.2", "--poll-interval", "0.05",
            "--rotate-wait", "0.5", "--progress-interval", "0.2", "--max-backoff", "1",
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = OUTPUT_DIR / f"ship-{service}.log"

    def start(self) -> None:
        self.status.unlink(missing_ok=True)
        OUTPUT_DIR.mkdir(exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)

    async def delivered_at_least(self, count: int) -> None:
        async def probe() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, self.log.read_text()
            try:
                return bool(json.loads(self.status.read_text())["delivered"] >= count)
            except (FileNotFoundError, ValueError):
                return False

        await eventually(probe, within=60, what=f"{count} delivered by the shipper")

    def stop(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


async def test_every_line_arrives_exactly_once_through_crash_rotation_and_outage(
    service_process: StartService, topics: Topics, unique: str, tmp_path: Path
) -> None:
    service = f"ship-{unique}"
    log = tmp_path / "app.log"
    gateway = service_process("ingest", topics.env())
    ship = ShipCommand(tmp_path, gateway.url, service)
    expected: list[str] = []
    replacement = None
    try:
        batch_a = records("a", 2000)
        append(log, batch_a)
        expected += batch_a
        ship.start()
        await ship.delivered_at_least(400)

        # A crash: batches in flight were maybe stored but not checkpointed.
        assert ship.stop(signal.SIGKILL) == -signal.SIGKILL
        for name, lines in (("b", records("b", 500)), ("c", records("c", 500))):
            append(log, lines)
            expected += lines
            if name == "b":
                log.rename(tmp_path / "app.log.1")  # rename rotation while the shipper is down
        ship.start()
        await ship.delivered_at_least(1)

        # The gateway goes away; meanwhile the file grows and is copytruncated.
        gateway.terminate()
        for lines in (records("d", 500), records("e", 300)):
            append(log, lines)
            expected += lines
        shutil.copyfile(log, tmp_path / "app.log.2")
        with log.open("r+") as handle:
            handle.truncate(0)
        batch_f = records("f", 300)
        append(log, batch_f)
        expected += batch_f
        replacement = restart_on_same_port(gateway, topics.env(), f"{unique}-again")

        def complete(rs: list[dict[str, object]]) -> bool:
            ours = [r for r in rs if r["service"] == service]
            return len(by_id(ours)) >= len(expected)

        found = await read_topic(topics.main, until=complete, within=120)
        assert ship.stop(signal.SIGTERM) == 0
    finally:
        if ship.proc is not None and ship.proc.poll() is None:
            ship.proc.kill()
            ship.proc.wait(10)
        if replacement is not None:
            replacement.kill()

    stored = by_id([r for r in found if r["service"] == service])
    counts = Counter(str(r["message"]) for r in stored.values())
    assert counts == Counter(expected), {
        "missing": len(set(expected) - set(counts)),
        "duplicated": [m for m, c in counts.items() if c > 1][:5],
    }
    traces = [r for r in stored.values() if "\n  at frame" in str(r["message"])]
    assert traces
    assert {r["level"] for r in traces} == {"ERROR"}
    checkpoint = json.loads((tmp_path / "checkpoint.json").read_text())
    assert checkpoint["streams"]
    assert "delivered" in ship.log.read_text()  # the periodic progress line
