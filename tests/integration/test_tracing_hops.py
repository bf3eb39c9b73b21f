"""One traced event's trace in Jaeger shows every hop: gateway → Kafka → writer, stream, alerter.

The services run as subprocesses on private topics, database and schema, with telemetry
on (the stack's Jaeger). A live-tail client is connected, so the stream delivers the event.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest

from logriver_common.auth import DEV_KEY
from tests.conftest import StartService, Topics
from tests.stack import STACK, eventually, wait_for_jaeger

pytestmark = [pytest.mark.integration]
TRACED = {"LOGRIVER_OTEL_ENABLED": "true", "LOGRIVER_OTEL_SAMPLE_RATIO": "1.0"}


async def _trace(trace_id: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(base_url=STACK.jaeger_query, timeout=5) as http:
        resp = await http.get(f"/api/traces/{trace_id}")
    if resp.status_code != 200:
        return None
    data = resp.json().get("data") or []
    return data[0] if data else None


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


def _parent(span: dict[str, Any]) -> str | None:
    for ref in span.get("references", []):
        if ref["refType"] == "CHILD_OF":
            return str(ref["spanID"])
    return None


async def _tail_until(url: str, service: str, message: str, connected: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {DEV_KEY}", "Accept": "text/event-stream"}
    async with (
        httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(5, read=60)) as http,
        http.stream("GET", "/v1/stream", params={"service": service}, headers=headers) as resp,
    ):
        assert resp.status_code == 200, await resp.aread()
        connected.set()
        async for line in resp.aiter_lines():
            if line.startswith("data:") and message in line:
                return


async def test_one_traced_event_crosses_every_hop(
    service_process: StartService,
    topics: Topics,
    mongo_database: str,
    postgres_dsn: str,
    unique: str,
) -> None:
    await wait_for_jaeger()
    common = {**topics.env(), **TRACED, "LOGRIVER_MONGO_DATABASE": mongo_database}
    procs = [
        service_process("ingest", common, wait=False),
        service_process(
            "writer", {**common, "LOGRIVER_WRITER_GROUP_ID": f"writer-{unique}"}, wait=False
        ),
        service_process("stream", common, wait=False),
        service_process(
            "alerter",
            {
                **common,
                "LOGRIVER_POSTGRES_DSN": postgres_dsn,
                "LOGRIVER_ALERTER_GROUP_ID": f"alerter-{unique}",
            },
            wait=False,
        ),
    ]
    for proc in procs:
        proc.wait_ready(within=240)  # four services starting at once on a small machine
    gateway, _, stream, _ = procs

    service = f"traced-{unique}"
    message = f"traced checkout {unique}"
    connected = asyncio.Event()
    tail = asyncio.create_task(_tail_until(stream.url, service, message, connected))
    try:
        await asyncio.wait_for(connected.wait(), 30)
        trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
            resp = await http.post(
                "/v1/logs",
                json={"service": service, "level": "error", "message": message},
                headers={
                    "Authorization": f"Bearer {DEV_KEY}",
                    "traceparent": f"00-{trace_id}-{parent_id}-01",
                },
            )
        assert resp.status_code == 202, resp.text
        await asyncio.wait_for(tail, 30)
    finally:
        tail.cancel()

    wanted = {"send", "logriver.writer.store", "logriver.stream deliver", "logriver.alerter count"}

    async def every_hop() -> dict[str, Any] | None:
        found = await _trace(trace_id)
        if found is None:
            return None
        names = {s["operationName"].split(" ")[0] for s in found["spans"]}
        names |= {s["operationName"] for s in found["spans"]}
        return found if wanted <= names else None

    found = await eventually(every_hop, within=60, interval=1, what="every hop in the trace")
    services = {key: p["serviceName"] for key, p in found["processes"].items()}
    spans = {s["operationName"]: s for s in found["spans"]}
    server = next(s for s in found["spans"] if _tags(s).get("span.kind") == "server")
    assert _parent(server) == parent_id
    send = spans[f"send {topics.main}"]
    send_tags = _tags(send)
    assert services[send["processID"]] == "logriver-ingest"
    assert _parent(send) == server["spanID"]
    assert send_tags["span.kind"] == "producer"
    assert send_tags["messaging.system"] == "kafka"
    assert send_tags["messaging.operation.type"] == "send"
    assert send_tags["messaging.destination.name"] == topics.main
    assert send_tags["messaging.kafka.message.key"] == service
    # Every consumer hop is a child of the produce span, carried in the Kafka headers.
    for name, owner in [
        ("logriver.writer.store", "logriver-writer"),
        ("logriver.stream deliver", "logriver-stream"),
        ("logriver.alerter count", "logriver-alerter"),
    ]:
        span = spans[name]
        tags = _tags(span)
        assert services[span["processID"]] == owner, name
        assert _parent(span) == send["spanID"], name
        assert tags["span.kind"] == "consumer", name
        assert tags["messaging.system"] == "kafka", name
        assert tags["messaging.operation.type"] == "process", name
    for name in ("logriver.stream deliver", "logriver.alerter count"):
        tags = _tags(spans[name])
        assert tags["messaging.destination.name"] == topics.main
        assert tags["messaging.kafka.message.key"] == service
        assert "messaging.kafka.offset" in tags
        assert "messaging.destination.partition.id" in tags
    deliver = _tags(spans["logriver.stream deliver"])
    assert deliver["logriver.deliveries"] == 1
    assert deliver["messaging.batch.message_count"] == 1
