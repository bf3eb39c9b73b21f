"""A response closes its keep-alive connection with probability body share + request share."""

from __future__ import annotations

import functools
import random

import pytest
from starlette.types import Message, Receive, Scope, Send

from logriver_common.web.connection_recycling import ConnectionRecyclingMiddleware


async def _echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, as the gateway does, then answers 202."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 202, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def _headers(
    middleware: ConnectionRecyclingMiddleware, chunks: list[bytes]
) -> list[tuple[bytes, bytes]]:
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware({"type": "http", "method": "POST"}, receive, send)
    headers: list[tuple[bytes, bytes]] = sent[0]["headers"]
    return headers


async def test_a_request_closes_its_connection_when_the_coin_falls_below_its_share() -> None:
    # 300 of 1,000 bytes: closes when the draw is below 0.3, counting every chunk.
    for draw, closes in ((0.0, True), (0.29, True), (0.3, False), (0.99, False)):
        middleware = ConnectionRecyclingMiddleware(
            _echo_app, bytes_per_connection=1_000, coin=functools.partial(float, draw)
        )
        headers = await _headers(middleware, [b"x" * 100, b"x" * 200])
        assert ((b"connection", b"close") in headers) is closes, draw
        assert (b"x-a", b"1") in headers


async def test_a_body_larger_than_the_budget_always_closes_and_an_empty_one_never() -> None:
    middleware = ConnectionRecyclingMiddleware(
        _echo_app, bytes_per_connection=100, coin=lambda: 0.999
    )
    assert (b"connection", b"close") in await _headers(middleware, [b"x" * 101])
    never = ConnectionRecyclingMiddleware(_echo_app, bytes_per_connection=100, coin=lambda: 0.0)
    assert (b"connection", b"close") not in await _headers(never, [b""])


async def test_a_request_budget_closes_bodiless_requests_one_in_n() -> None:
    for draw, closes in ((0.0, True), (0.0099, True), (0.01, False)):
        middleware = ConnectionRecyclingMiddleware(
            _echo_app, requests_per_connection=100, coin=functools.partial(float, draw)
        )
        assert ((b"connection", b"close") in await _headers(middleware, [b""])) is closes, draw
    # Both budgets add: 1/100 for the request and 500/1000 for its body.
    both = ConnectionRecyclingMiddleware(
        _echo_app,
        bytes_per_connection=1_000,
        requests_per_connection=100,
        coin=functools.partial(float, 0.505),
    )
    assert (b"connection", b"close") in await _headers(both, [b"x" * 500])


async def test_zero_turns_it_off() -> None:
    middleware = ConnectionRecyclingMiddleware(_echo_app, bytes_per_connection=0, coin=lambda: 0.0)
    assert (b"connection", b"close") not in await _headers(middleware, [b"x" * 10_000])


def test_over_many_requests_a_connection_carries_about_the_budget() -> None:
    """With a seeded coin, 1,000-byte requests and a 20,000-byte budget: ~20 per connection."""
    rng = random.Random(7)
    middleware = ConnectionRecyclingMiddleware(
        _echo_app, bytes_per_connection=20_000, coin=rng.random
    )
    closes = sum(middleware._due(1_000) for _ in range(100_000))
    assert 100_000 / closes == pytest.approx(20, rel=0.05)
