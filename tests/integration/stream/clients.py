"""Test clients for the stream service: a Kafka event producer, an SSE reader, a WS reader.

Events are produced straight to Kafka (keyed by service, with ``received_at``)
because the ingest gateway is built concurrently; the end-to-end suite covers
the path through the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from logriver_common.auth import DEV_KEY
from tests.stack import STACK, eventually

AUTH = {"Authorization": f"Bearer {DEV_KEY}"}


def event(service: str, seq: int, *, run: str, level: str = "INFO", **extra: Any) -> dict[str, Any]:
    return {
        "service": service,
        "level": level,
        "message": f"{run} {service} #{seq}",
        "metadata": {"seq": seq, "run": run},
        **extra,
    }


class EventProducer:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._producer = AIOKafkaProducer(bootstrap_servers=STACK.kafka, linger_ms=5, acks=1)

    async def __aenter__(self) -> EventProducer:
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._producer.stop()

    async def send(self, events: list[dict[str, Any]]) -> None:
        """Produce every event, keyed by service, and wait for all acks."""
        futures = []
        for item in events:
            body = {"received_at": datetime.now(UTC).isoformat(), **item}
            futures.append(
                await self._producer.send(
                    self.topic, orjson.dumps(body), key=item["service"].encode()
                )
            )
        await asyncio.gather(*futures)

    async def send_at(
        self, events: list[dict[str, Any]], *, partition: int, timestamp_ms: int
    ) -> None:
        """Produce to one partition with a chosen Kafka timestamp (to make old records)."""
        futures = []
        for item in events:
            body = {"received_at": datetime.now(UTC).isoformat(), **item}
            futures.append(
                await self._producer.send(
                    self.topic, orjson.dumps(body), partition=partition, timestamp_ms=timestamp_ms
                )
            )
        await asyncio.gather(*futures)

    async def send_raw(self, value: bytes, key: bytes = b"raw") -> None:
        await self._producer.send_and_wait(self.topic, value, key=key)


@dataclass
class SseMessage:
    event: str | None = None
    id: str | None = None
    data: str | None = None
    comments: list[str] = field(default_factory=list)


async def sse_messages(response: httpx.Response) -> AsyncIterator[SseMessage]:
    """A strict SSE parser: one message per blank line."""
    message = SseMessage()
    async for line in response.aiter_lines():
        if line == "":
            yield message
            message = SseMessage()
        elif line.startswith(":"):
            message.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                message.event = value
            elif name == "id":
                message.id = value
            elif name == "data":
                message.data = value if message.data is None else f"{message.data}\n{value}"


class SseReader:
    """Reads one SSE stream in the background, tracking the last id like EventSource."""

    def __init__(
        self,
        base_url: str,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=None))
        self._params = params
        self._headers = dict(AUTH if headers is None else headers)
        self.status: int | None = None
        self.body: bytes = b""
        self.opened = False
        self.last_id: str | None = None
        self.logs: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.dropped: list[int] = []
        self.errors: list[dict[str, Any]] = []
        self.pings: list[str | None] = []
        self.ended = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SseReader:
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task
        await self._client.aclose()

    async def _read(self) -> None:
        async with self._client.stream(
            "GET", "/v1/stream", params=self._params, headers=self._headers
        ) as response:
            self.status = response.status_code
            if response.status_code != 200:
                self.body = await response.aread()
                self.ended = True
                return
            async for message in sse_messages(response):
                if message.id is not None:
                    self.last_id = message.id
                if "open" in message.comments:
                    self.opened = True
                if "ping" in message.comments:
                    self.pings.append(message.id)
                if message.event == "log" and message.data is not None:
                    self.logs.append(orjson.loads(message.data))
                    self.ids.append(message.id or "")
                elif message.event == "dropped" and message.data is not None:
                    self.dropped.append(orjson.loads(message.data)["dropped"])
                elif message.event == "error" and message.data is not None:
                    self.errors.append(orjson.loads(message.data))
        self.ended = True

    async def wait_open(self) -> SseReader:
        async def ready() -> bool:
            if self._task is not None and self._task.done() and not self.opened:
                self._task.result()  # surface the failure
                raise AssertionError(f"stream ended before opening: {self.status} {self.body!r}")
            return self.opened

        await eventually(ready, within=30, interval=0.05, what="stream open")
        return self

    async def wait_logs(self, count: int, within: float = 60) -> list[dict[str, Any]]:
        async def enough() -> bool:
            return len(self.logs) >= count

        await eventually(enough, within=within, interval=0.05, what=f"{count} events")
        return self.logs

    async def wait_end(self, within: float = 30) -> None:
        async def ended() -> bool:
            return self.ended

        await eventually(ended, within=within, interval=0.05, what="end of stream")


class WsReader:
    """A WebSocket subscriber collecting every server message."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None) -> None:
        self._url = url
        self._headers = dict(AUTH if headers is None else headers)
        self.messages: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = False
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WsReader:
        self._ws = await connect(self._url, additional_headers=self._headers)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._ws is not None:
            await self._ws.close()

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                self.messages.append(orjson.loads(raw))
        except ConnectionClosed:
            pass
        self.close_code = self._ws.close_code
        self.close_reason = self._ws.close_reason
        self.closed = True

    async def send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send(orjson.dumps(message).decode())

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def events(self) -> list[dict[str, Any]]:
        return [m["event"] for m in self.of_type("log")]

    async def wait_for(self, kind: str, count: int = 1, within: float = 30) -> list[dict[str, Any]]:
        async def enough() -> bool:
            return len(self.of_type(kind)) >= count

        await eventually(enough, within=within, interval=0.05, what=f"{count} {kind!r} messages")
        return self.of_type(kind)

    async def wait_closed(self, within: float = 30) -> None:
        async def closed() -> bool:
            return self.closed

        await eventually(closed, within=within, interval=0.05, what="close")
