"""A live stream's body chunks go straight to the server, past the middleware chain.

Every ASGI message an app sends passes through each middleware's ``send``
wrapper: Starlette's error and exception handlers, OpenTelemetry, the request
context, CORS. For an ordinary response that is three messages. A live tail
writes one chunk per wake-up for hours: with 1,000 SSE clients at 2,000
events/s the six wrappers cost 18% of the instance's CPU (py-spy,
docs/performance.md), and none of them does anything with a middle chunk. They
act on the response start (status, headers, CORS, request id) and on the last
message (OpenTelemetry ends the server span there), so those two still go
through the chain; only the chunks in between take the server's own ``send``.

:class:`ExposeServerSend` wraps the whole app when it is served (``__main__``),
so it sees the server's ``send`` before any middleware does. An app run
without it (the in-process test client) has no key in its scope and writes
every chunk through the chain, as before.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

SERVER_SEND = "logriver.server_send"


class ExposeServerSend:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[SERVER_SEND] = send
        await self.app(scope, receive, send)


def body_send(scope: Scope, chain_send: Send) -> Send:
    """Where a stream's middle chunks go: the server's ``send`` when exposed."""
    send: Send = scope.get(SERVER_SEND, chain_send)
    return send
