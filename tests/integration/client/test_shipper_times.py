"""``logriver ship`` keeps each line's own time through the real pipeline.

A backlog written three days ago (inside the default 30-day retention) is shipped
now to the stack's gateway on 127.0.0.1:8000; the events stored in MongoDB's
``logriver.logs`` carry the times written in the lines, in every supported
form. Only the lines without a usable time get the receive time.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from logriver_common.auth import DEV_KEY
from tests.processes import OUTPUT_DIR
from tests.stack import STACK, eventually

pytestmark = [pytest.mark.integration]

GATEWAY = "http://127.0.0.1:8000"  # the shared stack's gateway (make up)
ZONE = timezone(timedelta(hours=5, minutes=30))  # --timezone for stamps without an offset


def iso_ms(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds")


def backlog(base: datetime) -> tuple[list[str], dict[str, datetime]]:
    """Lines in every supported form, each a minute apart, and the time each must keep."""
    at = [base + timedelta(minutes=n) for n in range(8)]
    local = [t.astimezone(ZONE).replace(tzinfo=None) for t in at]
    expected = {
        "iso": at[0],
        "naive": at[1],
        "syslog": at[2].replace(microsecond=0),
        "epoch": at[3],
        "json-ms": at[4],
        "json-offset": at[5],
        "trace": at[6],
        "bracketed": at[7],
    }
    lines = [
        f"{iso_ms(at[0]).replace('+00:00', 'Z')} INFO iso",
        f"{local[1]:%Y-%m-%d %H:%M:%S},{local[1].microsecond // 1000:03d} WARN naive",
        f"{local[2]:%b} {local[2].day:2d} {local[2]:%H:%M:%S} host app[1]: syslog",
        f"{int(at[3].timestamp() * 1000)} INFO epoch",
        json.dumps({"ts": int(at[4].timestamp() * 1000), "msg": "json-ms"}),
        json.dumps(
            {
                "@timestamp": iso_ms(at[5].astimezone(timezone(timedelta(hours=2)))),
                "msg": "json-offset",
            }
        ),
        f"{iso_ms(at[6])} ERROR trace",
        "Traceback (most recent call last):",
        f"  {iso_ms(at[0])} a stamp inside the trace does not count",
        f"[{local[7]:%Y-%m-%d %H:%M:%S}.{local[7].microsecond // 1000:03d}] INFO bracketed",
        "no stamp INFO receive-time",
        "9999-12-31T23:59:59Z ERROR absurd",
        # Older than the default 30-day retention: the gateway refuses it, the rest is kept.
        f"{iso_ms(base - timedelta(days=40))} INFO expired",
    ]
    return lines, expected


def message_key(doc: dict[str, Any]) -> str:
    message: str = doc["message"]
    return message.split("\n")[0].split()[-1]


async def test_a_late_backlog_keeps_the_times_written_in_its_lines(
    stack: None, unique: str, tmp_path: Path
) -> None:
    started = datetime.now(UTC)
    base = (started - timedelta(days=3)).replace(microsecond=started.microsecond // 1000 * 1000)
    lines, expected = backlog(base)
    log = tmp_path / "backlog.log"
    log.write_text("\n".join(lines) + "\n")
    service = f"ship-times-{unique}"
    status = tmp_path / "status.json"
    OUTPUT_DIR.mkdir(exist_ok=True)
    args = [
        sys.executable, "-m", "logriver_client.cli", "ship", str(log),
        "--service", service, "--url", GATEWAY, "--api-key", DEV_KEY,
        "--checkpoint", str(tmp_path / "checkpoint.json"), "--status", str(status),
        "--multiline-start", r"^(\d|\[|\{|[A-Z][a-z]{2} |no )", "--multiline-timeout", "0.2",
        "--batch-wait", "0.1", "--poll-interval", "0.05", "--progress-interval", "0.1",
        "--timezone", "+05:30",
    ]  # fmt: skip
    with (OUTPUT_DIR / f"ship-{service}.log").open("wb") as output:
        proc = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)  # noqa: ASYNC220
    records = len(expected) + 3
    try:

        async def all_delivered() -> dict[str, Any] | None:
            assert proc.poll() is None, "the shipper exited early"
            try:
                body: dict[str, Any] = json.loads(status.read_text())
            except (FileNotFoundError, ValueError):
                return None
            return body if body["delivered"] + body["rejected"] >= records else None

        progress = await eventually(all_delivered, within=60, what="the backlog shipped")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert (progress["delivered"], progress["rejected"]) == (records - 1, 1), progress
    assert "retention" in progress["last_error"], progress
    assert (progress["time_parsed"], progress["time_missing"], progress["time_invalid"]) == (
        len(expected) + 1,
        1,
        1,
    )

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
    try:
        logs = client["logriver"]["logs"]

        async def stored() -> list[dict[str, Any]] | None:
            docs = await logs.find({"service": service}).to_list(None)
            return docs if len(docs) >= records - 1 else None

        docs = await eventually(stored, within=60, what=f"{records - 1} events of {service} stored")
    finally:
        await client.close()
    by_key = {message_key(doc): doc for doc in docs}
    assert len(by_key) == records - 1, sorted(by_key)
    assert "expired" not in by_key
    for key, when in expected.items():
        assert by_key[key]["timestamp"] == when, key  # BSON dates keep milliseconds
    assert by_key["trace"]["message"].count("\n") == 2  # joined, with the first line's time
    for key in ("receive-time", "absurd"):
        stamp = by_key[key]["timestamp"]
        assert started - timedelta(seconds=5) <= stamp <= datetime.now(UTC), (key, stamp)
