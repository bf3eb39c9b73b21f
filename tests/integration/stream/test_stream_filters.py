"""SSE and WebSocket subscribers receive exactly the events their server-side filters select."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.stream.clients import EventProducer, SseReader, WsReader, event
from tests.integration.stream.conftest import Instances
from tests.stack import eventually

pytestmark = pytest.mark.integration


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [int(e["metadata"]["seq"]) for e in events]


async def test_sse_filters_on_the_server(instances: Instances, run_id: str) -> None:
    api, web = f"{run_id}-api", f"{run_id}-web"
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    params = [("service", api), ("service", web), ("level", "warning"), ("q", "BOOM")]
    async with (
        SseReader(instances.a.url, params) as sse,
        SseReader(instances.a.url, {"trace_id": trace.upper(), "service": api}) as by_trace,
        SseReader(instances.a.url, {"service": api, "regex": r"#\d*7$"}) as by_regex,
        EventProducer(instances.topic) as producer,
    ):
        await sse.wait_open()
        await by_trace.wait_open()
        await by_regex.wait_open()
        events = [
            event(api, 1, run=run_id, level="ERROR", message="boom at the api"),
            event(api, 2, run=run_id, level="INFO", message="boom but only info"),
            event(web, 3, run=run_id, level="WARNING", message="web went Boom"),
            event(web, 4, run=run_id, level="CRITICAL", message="calm"),
            event(f"{run_id}-other", 5, run=run_id, level="ERROR", message="boom elsewhere"),
            event(api, 6, run=run_id, level="DEBUG", message="traced", trace_id=trace),
            event(api, 7, run=run_id, level="ERROR", message=f"{run_id} #7"),
            event(api, 8, run=run_id, level="CRITICAL", message="BOOM last"),
        ]
        await producer.send(events)
        await sse.wait_logs(3)
        await by_trace.wait_logs(1)
        await by_regex.wait_logs(1)
        assert sorted(seqs(sse.logs)) == [1, 3, 8]
        assert seqs(by_trace.logs) == [6]
        assert seqs(by_regex.logs) == [7]
        assert all(i for i in sse.ids)  # every event carries its resume id
        # Idle streams get heartbeats that advance the resume point past events
        # that did not match (here one more event of another service).
        last = sse.ids[-1]
        await producer.send([event(f"{run_id}-other", 9, run=run_id, level="ERROR")])

        async def pinged_forward() -> bool:
            return any(p is not None and p != last for p in sse.pings)

        await eventually(pinged_forward, within=30, what="heartbeat with a newer id")
        # The checkpoint means the instance processed everything produced: nothing more came.
        assert sorted(seqs(sse.logs)) == [1, 3, 8]
        assert seqs(by_trace.logs) == [6]
        assert seqs(by_regex.logs) == [7]


async def test_metadata_filter_and_bad_records_are_skipped(
    instances: Instances, run_id: str
) -> None:
    svc = f"{run_id}-meta"
    async with (
        SseReader(
            instances.b.url, {"service": svc, "meta.region": "eu", "meta.attempt": "3"}
        ) as sse,
        EventProducer(instances.topic) as producer,
    ):
        await sse.wait_open()
        await producer.send_raw(b"not json at all", key=svc.encode())
        await producer.send_raw(b'{"service": "%s", "message": 5}' % svc.encode(), svc.encode())
        await producer.send(
            [
                event(svc, 1, run=run_id, metadata={"seq": 1, "region": "eu", "attempt": 3}),
                event(svc, 2, run=run_id, metadata={"seq": 2, "region": "us", "attempt": 3}),
                event(svc, 3, run=run_id, metadata={"seq": 3, "region": "eu", "attempt": 2}),
                event(svc, 4, run=run_id, metadata={"seq": 4, "region": "eu", "attempt": 3}),
            ]
        )
        await sse.wait_logs(2)
        assert seqs(sse.logs) == [1, 4]
        assert sse.errors == []


async def test_websocket_filters_and_changes_filter_in_place(
    instances: Instances, run_id: str
) -> None:
    api, web = f"{run_id}-api", f"{run_id}-web"
    url = instances.b.url.replace("http", "ws") + f"/v1/ws?service={api}&level=ERROR"
    async with WsReader(url) as ws, EventProducer(instances.topic) as producer:
        await ws.wait_for("open")
        await producer.send(
            [
                event(api, 1, run=run_id, level="ERROR"),
                event(api, 2, run=run_id, level="INFO"),
                event(web, 3, run=run_id, level="ERROR"),
                event(api, 4, run=run_id, level="CRITICAL"),
            ]
        )
        await ws.wait_for("log", 2)
        assert seqs(ws.events()) == [1, 4]
        assert all(m["id"] for m in ws.of_type("log"))

        await ws.send({"type": "filter", "filter": {"service": [web], "level": "INFO"}})
        acks = await ws.wait_for("filter")
        assert acks[0]["filter"] == {"service": [web], "level": "INFO"}
        await producer.send(
            [
                event(api, 5, run=run_id, level="ERROR"),
                event(web, 6, run=run_id, level="INFO"),
                event(web, 7, run=run_id, level="DEBUG"),
                event(web, 8, run=run_id, level="ERROR"),
            ]
        )
        await ws.wait_for("log", 4)
        assert seqs(ws.events()) == [1, 4, 6, 8]
        # A bad filter change is refused and the old filter keeps running.
        await ws.send({"type": "filter", "filter": {"level": "loud"}})
        errors = await ws.wait_for("error")
        assert errors[0]["error"] == "invalid_filter"
        await ws.send({"type": "dance"})
        errors = await ws.wait_for("error", 2)
        assert errors[1]["error"] == "bad_message"
        await producer.send([event(web, 9, run=run_id, level="INFO")])
        await ws.wait_for("log", 5)
        assert seqs(ws.events())[-1] == 9
        assert not ws.closed
