"""schemathesis over every service's OpenAPI document: no 5xx, and the query API keeps its contract.

Each service runs as its own process on a free port, against this test's own
topics, MongoDB database, PostgreSQL schema and Redis key prefix, with the
local development key (local mode creates it in the private schema). The
schemathesis CLI runs all its phases on every operation: the documented
examples, coverage (boundary and just-out-of-bounds values: years 1 and 9999,
huge integers, NUL bytes, missing and extra parameters), fuzzing (valid and
invalid data) and stateful sequences. The budget is fixed and derandomized
(deterministic generation, a few examples per operation, no shrinking, a time
cap), so the whole module takes about a minute and a run is repeatable.

Every service must never answer 5xx (``not_a_server_error``). The query and
alerter services must also answer only documented status codes and content
types, with bodies that match their response models.

The writer is not in the list: it serves only health and metrics, which are
not in its OpenAPI document (it lists no operation to test).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from logriver_common.auth import DEV_KEY
from logriver_common.documents import event_to_document
from logriver_common.event import Level, LogEvent
from logriver_common.indexes import ensure_log_indexes
from tests.conftest import StartService, Topics
from tests.processes import OUTPUT_DIR
from tests.stack import STACK

pytestmark = [pytest.mark.integration]

CONFORMANCE = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


@dataclass(frozen=True)
class Target:
    name: str
    checks: tuple[str, ...] = ("not_a_server_error",)
    # An event stream never ends: schemathesis reads it until this timeout.
    request_timeout_s: float = 5.0
    env: Mapping[str, str] = field(default_factory=dict)


TARGETS = [
    Target("query", CONFORMANCE),
    Target("ingest"),
    Target("stream", request_timeout_s=1.0),
    Target(
        "alerter",
        CONFORMANCE,
        # `POST /v1/channels/{name}/test` delivers to whatever URL the fuzzer wrote.
        env={"LOGRIVER_ALERTER_DELIVERY_TIMEOUT_S": "1"},
    ),
]

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 20
# A hard cap per service; a normal run takes well under it (see the module docstring).
RUN_TIMEOUT_S = 90


def schemathesis_run(base_url: str, target: Target) -> subprocess.CompletedProcess[str]:
    junit = OUTPUT_DIR / f"schemathesis-{target.name}.xml"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        ",".join(target.checks),
        "--header",
        f"Authorization: Bearer {DEV_KEY}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--no-shrink",
        "--continue-on-failure",
        "--request-timeout",
        str(target.request_timeout_s),
        "--report",
        "junit",
        "--report-junit-path",
        str(junit),
        "--no-color",
        "--output-truncate",
        "false",
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
        cwd=ROOT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks"},
    )


async def seed_events(database: str) -> None:
    """A few stored events, so 200 answers carry events for the response-schema check."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(STACK.mongo_uri, tz_aware=True)
    try:
        logs = client[database]["logs"]
        await ensure_log_indexes(logs)
        now = datetime.now(UTC)
        docs = [
            event_to_document(
                LogEvent(
                    timestamp=now - timedelta(seconds=20 * i),
                    service=f"svc-{i % 3}",
                    level=list(Level)[i % 5],
                    message=f"request {i} done",
                    host="web-1",
                    env="prod",
                    trace_id=f"{i + 1:032x}" if i % 2 else None,
                    metadata={"attempt": i % 4, "order": f"A-{i}"},
                ),
                None,
            )
            for i in range(30)
        ]
        await logs.insert_many(docs)
    finally:
        await client.close()


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
async def test_schemathesis_finds_no_server_error(
    target: Target,
    service_process: StartService,
    topics: Topics,
    mongo_database: str,
    postgres_dsn: str,
    unique: str,
) -> None:
    if target.name == "query":
        await seed_events(mongo_database)
    env = {
        **topics.env(),
        "LOGRIVER_MONGO_DATABASE": mongo_database,
        "LOGRIVER_POSTGRES_DSN": postgres_dsn,
        "LOGRIVER_REDIS_KEY_PREFIX": f"test-{unique}:",
        "LOGRIVER_OTEL_ENABLED": "false",
        "LOGRIVER_ALERTER_GROUP_ID": f"alerter-{unique}",
        **target.env,
    }
    proc = service_process(target.name, env)
    async with httpx.AsyncClient() as http:
        document = (await http.get(f"{proc.url}/openapi.json")).json()
    assert document["paths"], f"{target.name} lists no operation"

    run = await asyncio.to_thread(schemathesis_run, proc.url, target)

    output = run.stdout[-20_000:] + run.stderr[-5_000:]
    assert run.returncode == 0, f"schemathesis found failures in {target.name}:\n{output}"
    assert "generated" in run.stdout, output
    assert proc.running(), proc.tail()
