"""Object, array, NDJSON and gzip bodies land in Kafka exactly as normalised,
keyed by service, with the request's trace context in the headers."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from logriver_common.event import LogEvent
from tests.conftest import Topics
from tests.integration.ingest.conftest import OpenGateway, Record, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

# A stamp an hour ago in a +02:00 zone: inside retention, normalised to UTC by the gateway.
_LOCAL = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
LOCAL_STAMP = _LOCAL.astimezone(timezone(timedelta(hours=2))).isoformat()
UTC_STAMP = _LOCAL.isoformat().replace("+00:00", "Z")

# The original design's LogEntry, exactly as its clients send it.
LOG_ENTRY = {
    "timestamp": LOCAL_STAMP,
    "level": "error",
    "service": "checkout",
    "message": "payment provider timed out",
    "metadata": {"order_id": "A-1042", "attempt": 3},
}


def by_id(records: list[Record]) -> dict[str, Record]:
    out = {}
    for record in records:
        out[orjson.loads(record.value)["id"]] = record
    return out


async def test_every_body_shape_arrives_normalised_keyed_and_traced(
    gateway: OpenGateway, topics: Topics
) -> None:
    sent_at = datetime.now(UTC)
    ndjson = (
        b'{"service":"nd","message":"one"}\n\n{"service":"nd","message":"two","level":"WARN"}\n'
    )
    array = [
        {"service": "arr", "message": "a", "id": "client-id-1", "context": {"k": [1, None]}},
        {"service": "arr.b", "message": "b", "trace_id": TRACE_ID.upper(), "host": "web-1"},
    ]
    async with gateway() as http:
        headers = {"traceparent": TRACEPARENT}
        single = await http.post("/v1/logs", json=LOG_ENTRY, headers=headers)
        batch = await http.post("/v1/logs", json=array, headers=headers)
        lines = await http.post(
            "/v1/logs", content=ndjson, headers={**headers, "Content-Type": "application/x-ndjson"}
        )
        zipped = await http.post(
            "/v1/logs",
            content=gzip.compress(ndjson),
            headers={
                **headers,
                "Content-Type": "application/x-ndjson",
                "Content-Encoding": "gzip",
            },
        )
    for response in (single, batch, lines, zipped):
        assert response.status_code == 202, response.text
    assert single.json()["accepted"] == 1
    assert batch.json()["ids"][0] == "client-id-1"
    assert lines.json()["accepted"] == zipped.json()["accepted"] == 2
    ids = [i for r in (single, batch, lines, zipped) for i in r.json()["ids"]]
    assert len(set(ids)) == 7

    records = by_id(await read_topic(topics.main, expect=7))
    assert set(records) == set(ids)
    for record in records.values():
        event = LogEvent.model_validate_json(record.value)
        assert record.key == event.service.encode()
        # The value is exactly the normalised event as the shared model serialises it.
        assert record.value == event.to_json()
        assert event.received_at is not None
        assert sent_at - timedelta(seconds=1) <= event.received_at <= datetime.now(UTC)
        assert record.headers["traceparent"].decode().split("-")[1] == TRACE_ID

    entry = orjson.loads(records[single.json()["ids"][0]].value)
    assert entry["level"] == "ERROR"
    assert entry["timestamp"] == UTC_STAMP
    assert entry["metadata"] == LOG_ENTRY["metadata"]
    arr_a = orjson.loads(records["client-id-1"].value)
    assert arr_a["metadata"] == {"k": [1, None]}  # `context` alias; nulls inside kept
    assert "host" not in arr_a  # unset optionals are left out
    assert arr_a["trace_id"] == TRACE_ID  # filled from the request's traceparent
    arr_b = orjson.loads(records[batch.json()["ids"][1]].value)
    assert arr_b["trace_id"] == TRACE_ID
    levels = sorted(orjson.loads(records[i].value)["level"] for i in lines.json()["ids"])
    assert levels == ["INFO", "WARNING"]


async def test_partial_batch_publishes_only_the_valid_items(
    gateway: OpenGateway, topics: Topics
) -> None:
    items = [
        {"service": "ok", "message": "first"},
        {"service": "bad service name!", "message": "x"},
        {"service": "ok", "message": "third"},
        "not an object",
    ]
    async with gateway() as http:
        response = await http.post("/v1/logs", json=items)
    assert response.status_code == 207, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert body["rejected"] == 2
    assert [e["index"] for e in body["errors"]] == [1, 3]
    assert body["errors"][0]["errors"][0]["loc"] == ["service"]
    records = await read_topic(topics.main, expect=2)
    assert len(records) == 2
    assert sorted(orjson.loads(r.value)["message"] for r in records) == ["first", "third"]
    assert set(by_id(records)) == set(body["ids"])


async def test_large_batch_keeps_each_services_order_on_one_partition(
    gateway: OpenGateway, topics: Topics
) -> None:
    events = [{"service": f"svc-{i % 5}", "message": f"{i}"} for i in range(1_500)]
    async with gateway() as http:
        response = await http.post("/v1/logs", json=events)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1_500
    records = await read_topic(topics.main, expect=1_500)
    assert len(records) == 1_500
    partitions: dict[bytes, set[int]] = {}
    order: dict[bytes, list[int]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        partitions.setdefault(record.key, set()).add(record.partition)
        order.setdefault(record.key, []).append(int(orjson.loads(record.value)["message"]))
    assert all(len(p) == 1 for p in partitions.values())
    assert all(seq == sorted(seq) and len(seq) == 300 for seq in order.values())
