"""Close a client's keep-alive connection now and then, so connections spread again.

The kernel (with several workers on one port) and an L4 load balancer (a
Kubernetes Service) place a connection once, when it opens. A client that keeps
one connection for hours stays on one worker or one replica however busy it is;
clients that connect at the same moment all land on the worker that woke first.
Measured: with two gateway workers and four senders, one worker did all the work.

A response says ``Connection: close`` with probability ``request body bytes /
bytes_per_connection + 1 / requests_per_connection`` (a budget of 0 adds
nothing). The client reconnects, and a new connection goes to a worker that is
free to accept it, which is a less busy one. A coin needs no state per
connection. The gateway weighs by bytes, so a sender of single small events
reconnects as rarely, per byte, as one of large batches; the query service,
whose requests have no body, by requests. nginx's ``keepalive_requests`` and
gRPC's ``max_connection_age`` do the same job.
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
        bytes_per_connection: int = 0,
        requests_per_connection: int = 0,
        coin: Callable[[], float] = random.random,
    ) -> None:
        """Budgets of 0 never close; ``coin`` is the random draw in [0, 1)."""
        self.app = app
        self.bytes_per_connection = bytes_per_connection
        self.per_request = 1 / requests_per_connection if requests_per_connection else 0.0
        self.coin = coin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (self.bytes_per_connection or self.per_request):
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
        share = self.per_request
        if self.bytes_per_connection:
            share += received / self.bytes_per_connection
        return self.coin() < share
