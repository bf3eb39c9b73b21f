"""The HTTP protocol every service runs: a response's head and body in one write.

The transport's rules, on a transport that records what it is asked to send;
tests/integration/test_http_server.py serves real clients with it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from logriver_common.http_protocol import (
    FLUSH_BYTES,
    CoalescingTransport,
)


class Recorder:
    """The transport calls a CoalescingTransport makes, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", None))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


def coalescing(recorder: Recorder) -> CoalescingTransport:
    return CoalescingTransport(recorder, asyncio.get_running_loop())  # type: ignore[arg-type]


async def test_writes_of_one_pass_go_out_as_one_write_at_its_end() -> None:
    recorder = Recorder()
    transport = coalescing(recorder)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(bytearray(b"{}"))
    assert recorder.calls == []
    assert transport.get_write_buffer_size() == 21
    await asyncio.sleep(0)
    assert recorder.calls == [("write", b"HTTP/1.1 200 OK\r\n\r\n{}")]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert recorder.calls[-1] == ("write", b"next")


async def test_a_large_write_is_sent_at_once_so_flow_control_sees_it() -> None:
    recorder = Recorder()
    transport = coalescing(recorder)
    transport.write(b"head")
    transport.write(b"x" * FLUSH_BYTES)
    assert recorder.calls == [("write", b"head" + b"x" * FLUSH_BYTES)]
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert len(recorder.calls) == 1


async def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    recorder = Recorder()
    transport = coalescing(recorder)
    transport.write(b"last words")
    transport.close()
    assert recorder.calls == [("write", b"last words"), ("close", None)]

    recorder = Recorder()
    transport = coalescing(recorder)
    transport.write(b"never sent")
    transport.abort()
    await asyncio.sleep(0)
    assert recorder.calls == [("abort", None)]


async def test_nothing_is_written_to_a_transport_already_closing() -> None:
    recorder = Recorder()
    transport = coalescing(recorder)
    transport.write(b"late")
    recorder.closing = True  # the peer went away before the end of the pass
    await asyncio.sleep(0)
    assert recorder.calls == []
