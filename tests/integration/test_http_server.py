"""A real uvicorn server with the services' HTTP protocol (logriver_common.http_protocol)
on a loopback socket: a plain answer on a kept connection, a large streamed body and a
WebSocket, read by real clients."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
import websockets
from fastapi import FastAPI, WebSocket
from fastapi.responses import Response, StreamingResponse

from logriver_common.http_protocol import CoalescingHttpToolsProtocol


def build_app() -> FastAPI:
    app = FastAPI()

    @app.get("/small")
    async def small() -> Response:
        return Response(b'{"ok":true}', media_type="application/json")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for index in range(300):
                yield bytes([65 + index % 26]) * 10_000
                if index % 10 == 0:
                    await asyncio.sleep(0)

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text.upper())

    return app


@pytest.fixture
async def server() -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        build_app(), http=CoalescingHttpToolsProtocol, log_level="warning", lifespan="off"
    )
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve(sockets=[sock]))
    while not served.started:  # noqa: ASYNC110 - uvicorn exposes only this flag
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        served.should_exit = True
        await task
        sock.close()


async def test_a_served_answer_arrives_whole_on_a_kept_connection(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    try:
        for _ in range(3):
            writer.write(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            assert b"content-length: 11\r\n" in head.lower()
            assert await reader.readexactly(11) == b'{"ok":true}'
    finally:
        writer.close()


async def test_a_streamed_body_of_three_megabytes_arrives_in_order(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    received = await reader.read()  # until the server closes
    writer.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    # De-chunk: size line, data, CRLF; a zero-size chunk ends it.
    data = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        data, body = data + body[:size], body[size + 2 :]
    assert data == b"".join(bytes([65 + i % 26]) * 10_000 for i in range(300))


async def test_a_websocket_upgrades_and_echoes(server: int) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{server}/echo") as ws:
        for word in ("tail", "resume"):
            await ws.send(word)
            assert await ws.recv() == word.upper()
