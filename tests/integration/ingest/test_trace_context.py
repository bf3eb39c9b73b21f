"""``traceparent`` on a JSON API request gives its ids to the events that carry none."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import Topics
from tests.integration.ingest.conftest import OpenGateway, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
OWN_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_traceparent_fills_events_without_trace_context(
    gateway: OpenGateway, topics: Topics
) -> None:
    events = [
        {"service": "tp", "message": "plain"},
        {"service": "tp", "message": "own", "trace_id": OWN_TRACE},
    ]
    async with gateway() as http:
        resp = await http.post(
            "/v1/logs",
            json=events,
            headers={"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "vendor=x"},
        )
        assert resp.status_code == 202, resp.text
        # An invalid header is ignored (W3C): the event is accepted without ids.
        resp = await http.post(
            "/v1/logs",
            json={"service": "tp", "message": "bad header"},
            headers={"traceparent": f"00-{'0' * 32}-{SPAN}-01"},
        )
        assert resp.status_code == 202, resp.text
    stored = {
        e["message"]: e
        for e in (orjson.loads(r.value) for r in await read_topic(topics.main, expect=3))
    }
    assert stored["plain"]["trace_id"] == TRACE
    assert stored["plain"]["span_id"] == SPAN
    assert stored["own"]["trace_id"] == OWN_TRACE
    assert "span_id" not in stored["own"]
    assert "trace_id" not in stored["bad header"]
