"""A lean HTTP/1.1 GET client for load: one keep-alive connection per simulated client.

Why not httpx: on this 2-core box the load generator shares the CPU with the service it
measures. httpx costs the bench process over a millisecond of CPU per request (its pool,
h11's pure-Python parsing), so with 20 clients a cached answer the service serves in
0.6 ms of CPU was reported at a ~30 ms median: the figure measured httpx. Load tools such
as wrk, hey or k6 keep their own cost out of the figure the same way, by doing almost
nothing per request. This client writes the request line and headers and reads the
status line, the headers and a ``Content-Length`` body; nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit


class LeanClient:
    def __init__(self, base_url: str, headers: Mapping[str, str]) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        fixed = {"Host": f"{self._host}:{self._port}", **headers}
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, params: Mapping[str, str]) -> tuple[int, bytes]:
        """``(status, body)`` of ``GET path?params``, on this client's one connection."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None  # noqa: S101 - opened together above
        target = f"{path}?{urlencode(params)}" if params else path
        self._writer.write(b"GET " + target.encode() + b" HTTP/1.1\r\n" + self._headers + b"\r\n")
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        if length is None:
            raise RuntimeError(f"{path}: an answer without Content-Length ({status})")
        body = await self._reader.readexactly(length)
        if close:  # the server recycles connections: the next request opens a new one
            await self.close()
        return status, body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()
            self._writer = None
