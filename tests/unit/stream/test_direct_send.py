"""A live stream's middle chunks skip the middleware chain; its start and end go through it."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from logriver_stream.cursor import CursorCodec
from logriver_stream.direct_send import ExposeServerSend
from logriver_stream.hub import Admission, Hub
from logriver_stream.session import Session
from logriver_stream.sse import EventStreamResponse
from logriver_stream.subscriber import CloseReason
from tests.stack import eventually
from tests.unit.stream.helpers import generous_budget, record, subscriber
from tests.unit.stream.test_session import context


class HeaderMiddleware:
    """Stands in for the chain: records what passes and adds a header to the start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[Message] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped(message: Message) -> None:
            self.seen.append(message)
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-request-id", b"r1")]
            await send(message)

        await self.app(scope, receive, wrapped)


async def never_disconnects() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def stream_through(*, exposed: bool) -> tuple[list[Message], list[Message]]:
    """Run one SSE session to its end; (messages the chain saw, messages the server got)."""
    codec = CursorCodec("t")
    hub = Hub(codec, generous_budget())
    hub.position.update({0: 0})
    admission = Admission(max_total=10, max_per_key=10, max_regex_per_key=1)
    sub = subscriber(queue_size=10, service=["api"])
    admission.acquire(sub)
    session = Session(context(hub, admission), sub)
    response = EventStreamResponse(session, retry_ms=2000, send_timeout=5)
    chain = HeaderMiddleware(response)
    app: ASGIApp = ExposeServerSend(chain) if exposed else chain
    server: list[Message] = []

    async def server_send(message: Message) -> None:
        server.append(message)

    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/v1/stream"}
    task = asyncio.ensure_future(app(scope, never_disconnects, server_send))

    async def delivered() -> bool:
        return any(b"event: log" in m.get("body", b"") for m in server)

    async def registered() -> bool:
        return len(hub) > 0

    await eventually(registered, within=5, interval=0.01, what="register")
    hub.publish([(0, i, record(0, i)) for i in range(3)])
    await eventually(delivered, within=5, interval=0.01, what="delivery")
    sub.close(CloseReason("key_revoked", "revoked"))
    await asyncio.wait_for(task, 5)
    return chain.seen, server


async def test_exposed_server_send_takes_the_middle_chunks_only() -> None:
    seen, server = await stream_through(exposed=True)
    # The chain saw the start (and added its header) and the final message, nothing between.
    assert [m["type"] for m in seen] == ["http.response.start", "http.response.body"]
    assert seen[-1]["more_body"] is False
    start = server[0]
    assert start["type"] == "http.response.start"
    assert (b"x-request-id", b"r1") in start["headers"]
    bodies = b"".join(m["body"] for m in server[1:])
    assert bodies.startswith(b": open\n")
    assert bodies.count(b"event: log\n") == 3
    assert b'"error":"key_revoked"' in bodies
    assert server[-1] == seen[-1]  # the end reached the server through the chain


async def test_without_exposure_every_message_goes_through_the_chain() -> None:
    seen, server = await stream_through(exposed=False)
    assert seen == server
    assert b"".join(m["body"] for m in server[1:]).count(b"event: log\n") == 3
