"""Close a client's keep-alive connection now and then, so connections spread again.

The kernel (with ``LOGRIVER_INGEST_WORKERS`` > 1) and an L4 load balancer (a
Kubernetes Service) place a connection once, when it opens. A sender that keeps one
connection for hours stays on one worker or one replica however busy it is; four
senders that connect at the same moment all land on the worker that woke first.
Measured: with two workers and four senders, one worker did all the work.

After about ``bytes_per_connection`` of request bodies a response says
``Connection: close``; the client reconnects, and a new connection goes to a
worker that is free to accept it, which is a less busy one. The decision is a
coin weighted by the request's size (probability ``size / bytes_per_connection``),
so it needs no state per connection, and a sender of single small events
reconnects as rarely, per byte, as one of large batches. nginx's
``keepalive_requests`` and gRPC's ``max_connection_age`` do the same job.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ConnectionRecyclingMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        bytes_per_connection: int,
        coin: Callable[[], float] = random.random,
    ) -> None:
        """``bytes_per_connection`` 0 never closes; ``coin`` is the random draw in [0, 1)."""
        self.app = app
        self.bytes_per_connection = bytes_per_connection
        self.coin = coin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.bytes_per_connection:
            await self.app(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and self._due(received):
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, counting_receive, closing_send)

    def _due(self, received: int) -> bool:
        return self.coin() * self.bytes_per_connection < received
