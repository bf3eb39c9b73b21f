"""LogriverHandler end to end against the scripted loopback gateway.

Integration tier: the stand-in is a loopback HTTP server (`make unit` opens no socket)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator

import pytest

from logriver_client import LogriverHandler, RetryPolicy
from tests.integration.client.fake_gateway import FakeGateway, Reply, fake_gateway, wait_for

pytestmark = [pytest.mark.integration]

FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    with fake_gateway() as gw:
        yield gw


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(f"test.handler.{os.urandom(4).hex()}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def attach(logger: logging.Logger, url: str, **kwargs: object) -> LogriverHandler:
    options: dict[str, object] = {"service": "svc", "retry": FAST, "flush_interval": 0.05}
    options.update(kwargs)
    handler = LogriverHandler(url, api_key="k", **options)  # type: ignore[arg-type]
    logger.addHandler(handler)
    return handler


def test_batches_are_bounded_by_size(gateway: FakeGateway, logger: logging.Logger) -> None:
    handler = attach(logger, gateway.url, batch_size=10, flush_interval=30)
    for i in range(35):
        logger.info("n=%d", i, extra={"n": i})
    assert handler.flush(10)
    sizes = [len(r.events) for r in gateway.requests]
    assert max(sizes) <= 10
    assert [e["metadata"]["n"] for e in gateway.events()] == list(range(35))
    assert handler.stats().delivered == 35


def test_batches_are_bounded_by_time(gateway: FakeGateway, logger: logging.Logger) -> None:
    attach(logger, gateway.url, batch_size=1000, flush_interval=0.1)
    logger.warning("lonely")
    wait_for(lambda: gateway.events(), within=5, what="a time-bounded batch")
    assert gateway.events()[0]["level"] == "WARNING"


def test_emit_returns_while_the_gateway_is_down(logger: logging.Logger) -> None:
    # Nothing listens on the discard port: the sender retries, the app never waits.
    handler = attach(logger, "http://127.0.0.1:9", queue_size=100, batch_size=10)
    started = time.perf_counter()
    for i in range(1000):
        logger.info("x %d", i)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    stats = handler.stats()
    assert stats.enqueued == 1000
    assert stats.dropped >= 1000 - 100 - 10
    assert not handler.flush(0.2)
    handler.close(timeout=0.2)
    stats = handler.stats()
    assert stats.delivered == 0
    assert stats.dropped + stats.failed == 1000


def test_overflow_drops_oldest_and_delivers_newest(
    gateway: FakeGateway, logger: logging.Logger
) -> None:
    gateway.replies.extend([Reply(503, {"Retry-After": "0.3"})])
    handler = attach(logger, gateway.url, queue_size=20, batch_size=5)
    logger.info("first")  # taken by the sender and retried after the 503
    wait_for(lambda: gateway.requests, what="the first request")
    for i in range(100):
        logger.info("m%d", i)
    assert handler.flush(10)
    stats = handler.stats()
    assert stats.dropped == 80
    messages = [e["message"] for e in gateway.events()]
    assert messages[-20:] == [f"m{i}" for i in range(80, 100)]
    assert "m0" not in messages
    assert stats.delivered == 21


def test_close_delivers_what_is_queued(gateway: FakeGateway, logger: logging.Logger) -> None:
    handler = attach(logger, gateway.url, batch_size=100, flush_interval=60)
    for i in range(250):
        logger.info("bye %d", i)
    logger.removeHandler(handler)
    handler.close(timeout=10)
    assert len(gateway.events()) == 250
    assert handler.stats().delivered == 250
    logger.info("after close")  # ignored, not an error
    assert handler.stats().enqueued == 250


def test_close_gives_up_within_its_timeout(gateway: FakeGateway, logger: logging.Logger) -> None:
    gateway.replies.extend([Reply(503, {"Retry-After": "60"})] * 100)
    handler = attach(logger, gateway.url)
    for i in range(30):
        logger.info("stuck %d", i)
    logger.removeHandler(handler)
    started = time.monotonic()
    handler.close(timeout=0.5)
    assert time.monotonic() - started < 3
    assert handler.stats().failed == 30


def test_rejected_batches_are_counted_not_retried(
    gateway: FakeGateway, logger: logging.Logger
) -> None:
    gateway.replies.append(Reply(403, body={"error": "forbidden", "detail": "no ingest scope"}))
    handler = attach(logger, gateway.url)
    logger.error("denied")
    assert handler.flush(5)
    stats = handler.stats()
    assert (stats.rejected, stats.delivered) == (1, 0)
    assert stats.last_error is not None
    assert "403" in stats.last_error
    assert len(gateway.requests) == 1


def test_client_and_http_library_records_are_not_shipped(
    gateway: FakeGateway, logger: logging.Logger
) -> None:
    handler = attach(logger, gateway.url)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logging.getLogger("httpx").warning("HTTP Request: POST ...")
        logging.getLogger("logriver_client.transport").warning("internal")
        logger.info("kept")
        assert handler.flush(5)
    finally:
        root.removeHandler(handler)
    assert [e["message"] for e in gateway.events()] == ["kept"]


async def test_works_inside_an_asyncio_app(gateway: FakeGateway, logger: logging.Logger) -> None:
    handler = attach(logger, gateway.url)

    async def request_handler(n: int) -> None:
        logger.info("request %d", n)
        await asyncio.sleep(0)

    await asyncio.gather(*(request_handler(n) for n in range(200)))
    assert await handler.aflush(10)
    assert sorted(e["message"] for e in gateway.events()) == sorted(
        f"request {n}" for n in range(200)
    )


def test_survives_fork(gateway: FakeGateway, logger: logging.Logger) -> None:
    gateway.replies.append(Reply(503, {"Retry-After": "0.5"}))
    handler = attach(logger, gateway.url)
    logger.info("parent before fork")
    wait_for(lambda: gateway.requests, what="the parent's first request")
    pid = os.fork()
    if pid == 0:  # the child: its own sender thread, none of the parent's queue
        code = 1
        try:
            logger.info("child %d", os.getpid())
            code = 0 if handler.flush(10) and handler.stats().delivered == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    logger.info("parent after fork")
    assert handler.flush(10)
    messages = sorted(e["message"] for e in gateway.events())
    # The parent's first event was sent twice (503, then retried): once rejected, once
    # accepted. The child sent only its own event.
    assert messages == sorted(
        ["parent before fork", "parent before fork", f"child {pid}", "parent after fork"]
    )


def test_flush_and_close_under_the_handler_lock_as_logging_shutdown_does(
    gateway: FakeGateway,
) -> None:
    # The sender logs a warning about the 422 on "logriver_client"; with the handler on
    # the root logger that record passes through this handler while the lock is held.
    gateway.replies.append(Reply(422, body={"error": "validation_failed", "detail": []}))
    handler = LogriverHandler(gateway.url, service="svc", flush_interval=0.05, retry=FAST)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logging.getLogger("app.shutdown").warning("rejected by the script")
        handler.acquire()
        try:
            started = time.monotonic()
            assert handler.flush(5)
            handler.close(timeout=5)
            assert time.monotonic() - started < 2
        finally:
            handler.release()
    finally:
        root.removeHandler(handler)
    assert handler.stats().rejected == 1
