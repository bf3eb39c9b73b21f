"""A slow client is told what it missed; a fast client on the same instance misses nothing."""

from __future__ import annotations

import asyncio
import socket

import httpx
import orjson
import pytest

from tests.conftest import StartService
from tests.integration.stream.clients import AUTH, EventProducer, SseReader, event
from tests.integration.stream.conftest import Instances, stream_env
from tests.metrics import metric_value
from tests.stack import eventually

pytestmark = pytest.mark.integration

TOTAL = 10_000
PADDING = "x" * 2_000  # 20 MB in all: far more than socket buffers plus one queue


class StalledClient:
    """An SSE client with a tiny receive buffer that stops reading after the stream opens."""

    def __init__(self, port: int, query: str) -> None:
        self._port = port
        self._query = query
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending = b""
        self.seqs: list[int] = []
        self.dropped: list[int] = []

    async def open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self._port))
        self._reader, self._writer = await asyncio.open_connection(sock=sock, limit=4096)
        # HTTP/1.0: the body is the raw stream, no chunked framing to undo.
        request = (
            f"GET /v1/stream?{self._query} HTTP/1.0\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: {AUTH['Authorization']}\r\n\r\n"
        )
        self._writer.write(request.encode())
        await self._writer.drain()
        while b": open" not in self._pending:
            self._pending += await self._reader.read(1024)

    async def read_until_accounted(self, total: int, within: float) -> None:
        async def more() -> bool:
            assert self._reader is not None
            try:
                async with asyncio.timeout(0.5):
                    self._consume(await self._reader.read(1 << 20))
            except TimeoutError:
                pass
            return len(self.seqs) + sum(self.dropped) >= total

        await eventually(more, within=within, interval=0, what="slow client caught up")

    def _consume(self, data: bytes) -> None:
        """Parse the complete SSE messages received so far; keep the incomplete tail."""
        *messages, self._pending = (self._pending + data).split(b"\n\n")
        for message in messages:
            fields = dict(
                line.split(b": ", 1) for line in message.split(b"\n") if b": " in line[1:]
            )
            if fields.get(b"event") == b"log":
                self.seqs.append(orjson.loads(fields[b"data"])["metadata"]["seq"])
            elif fields.get(b"event") == b"dropped":
                self.dropped.append(orjson.loads(fields[b"data"])["dropped"])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


async def test_slow_client_gets_dropped_while_fast_client_misses_nothing(
    instances: Instances, service_process: StartService, run_id: str
) -> None:
    proc = service_process("stream", stream_env(instances.topic, queue_size="2000"))
    svc = f"{run_id}-bp"
    slow = StalledClient(proc.port, f"service={svc}")
    await slow.open()
    try:
        async with (
            SseReader(proc.url, {"service": svc}) as fast,
            EventProducer(instances.topic) as producer,
        ):
            await fast.wait_open()
            for start in range(0, TOTAL, 1_000):
                await producer.send(
                    [
                        event(svc, seq, run=run_id, message=f"{seq} {PADDING}")
                        for seq in range(start, start + 1_000)
                    ]
                )
            await fast.wait_logs(TOTAL, within=120)
            assert [e["metadata"]["seq"] for e in fast.logs] == list(range(TOTAL))
            assert fast.dropped == []

        await slow.read_until_accounted(TOTAL, within=120)
        seqs, dropped = slow.seqs, slow.dropped
        assert dropped, "the slow client was never told it missed events"
        assert len(seqs) + sum(dropped) == TOTAL  # every event delivered or accounted for
        assert seqs == sorted(set(seqs))  # skipping ahead never reorders or repeats
        assert seqs[-1] == TOTAL - 1  # it skipped ahead to the newest
        async with httpx.AsyncClient(base_url=proc.url) as client:
            exposed = (await client.get("/metrics")).text
        assert metric_value(
            exposed, "logriver_stream_events_dropped_total", 'transport="sse"'
        ) == sum(dropped)
        delivered = metric_value(
            exposed, "logriver_stream_events_delivered_total", 'transport="sse"'
        )
        assert delivered == TOTAL + len(seqs)
        assert metric_value(
            exposed, "logriver_stream_delivery_latency_seconds_count", 'transport="sse"'
        )
    finally:
        slow.close()
