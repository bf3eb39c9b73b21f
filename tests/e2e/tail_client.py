"""A live-tail SSE client that keeps its resume point and reconnects like EventSource.

It records every delivered event id (with repeats), follows every ``id:`` line
(events, the opening message and heartbeats all move the resume point) and
reconnects with ``Last-Event-ID``, either when told to (``reconnect()``) or when
the stream breaks (a killed instance). Anything unexpected (``dropped``,
``error``) is recorded so the test can show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
import orjson

from tests.e2e.traffic import HEADERS

log = logging.getLogger(__name__)
STREAM = "http://127.0.0.1:8002"


@dataclass
class TailClient:
    services: list[str]
    seen: Counter[str] = field(default_factory=Counter)
    last_id: str | None = None
    connections: int = 0  # successful (200) connections, the first one included
    breaks: int = 0  # streams that ended without being asked to
    failed_connects: int = 0
    problems: list[str] = field(default_factory=list)  # dropped / error events
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _connection: asyncio.Task[None] | None = None
    _stopping: bool = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tail client")

    async def reconnect(self) -> None:
        """Drop the connection (as a closed laptop lid would); the loop resumes from last_id."""
        if self._connection is not None:
            self._connection.cancel()

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def missing(self, expected: Iterable[str]) -> set[str]:
        return {event_id for event_id in expected if event_id not in self.seen}

    def repeated(self) -> dict[str, int]:
        return {event_id: n for event_id, n in self.seen.items() if n > 1}

    async def _run(self) -> None:
        params = [("service", service) for service in self.services]
        async with httpx.AsyncClient(
            base_url=STREAM, headers=HEADERS, timeout=httpx.Timeout(10, read=60)
        ) as http:
            while not self._stopping:
                self._connection = asyncio.create_task(self._consume(http, params))
                try:
                    await self._connection
                except asyncio.CancelledError:
                    if self._task is not None and self._task.cancelling():
                        raise
                    # reconnect() dropped the connection: stay away for a moment, so
                    # events are missed and the resume has something to replay.
                    await asyncio.sleep(1.0)
                    continue
                except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                    self.failed_connects += 1
                    log.info("tail connection failed: %r", exc)
                else:
                    self.breaks += 1
                # EventSource waits its retry delay before reconnecting (2 s by default);
                # a short pause keeps a restarting instance from being hammered.
                await asyncio.sleep(0.5)

    async def _consume(self, http: httpx.AsyncClient, params: list[tuple[str, str]]) -> None:
        headers = {"Accept": "text/event-stream"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        query = tuple(params)
        async with http.stream("GET", "/v1/stream", params=query, headers=headers) as resp:
            resp.raise_for_status()
            self.connections += 1
            event, data, event_id = "message", "", None
            async for line in resp.aiter_lines():
                if line == "":
                    self._dispatch(event, data, event_id)
                    event, data, event_id = "message", "", None
                    continue
                if line.startswith(":"):
                    if line.startswith(": open"):
                        self.opened.set()
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    event = value
                elif name == "data":
                    data = f"{data}\n{value}" if data else value
                elif name == "id":
                    event_id = value

    def _dispatch(self, event: str, data: str, event_id: str | None) -> None:
        if event_id is not None:
            self.last_id = event_id  # as EventSource does, even for a bare heartbeat id
        if event == "log":
            self.seen[orjson.loads(data)["id"]] += 1
        elif event in ("dropped", "error"):
            self.problems.append(f"{event}: {data}")
