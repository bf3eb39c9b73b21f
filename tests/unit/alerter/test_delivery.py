"""Delivery lanes: retries with backoff, every attempt recorded, lanes independent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from logriver_alerter.delivery import Dispatcher
from logriver_alerter.egress import EgressPolicy, EgressTransport
from logriver_alerter.message import AlertMessage
from logriver_alerter.records import Notification
from logriver_alerter.rules import Channel
from logriver_alerter.settings import AlerterSettings
from logriver_common.consumer_kit.backoff import Backoff
from logriver_common.web.health import Readiness
from tests.stack import eventually
from tests.unit.alerter.fakes import FakeStore

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
MESSAGE = AlertMessage(
    kind="firing", alert_id=1, rule_id="r", rule_name="r", severity="warning", labels={},
    service="api", condition="count", level="ERROR", value=9, threshold=5, matched=9,
    total=9, window_seconds=60, top_messages=[], sample_trace_id=None, started_at=NOW,
    console_url="http://c.test/?service=api", trace_url=None,
)  # fmt: skip


def notification(channel: str, id_: int = 1) -> Notification:
    return Notification(id_, 1, channel, "firing", MESSAGE, 0)


def dispatcher(
    handler: httpx.AsyncBaseTransport, **settings: float
) -> tuple[Dispatcher, FakeStore]:
    store = FakeStore([])
    for name in ("good", "bad", "slow"):
        store.channels[name] = Channel.model_validate(
            {"name": name, "config": {"type": "webhook", "url": f"http://{name}.test/"}}
        )
    config = AlerterSettings.model_validate(
        {
            "delivery_backoff_s": 0.01,
            "delivery_max_attempts": 3,
            "delivery_timeout_s": 0.2,
            **settings,
        }
    )
    return Dispatcher(store.repos, config, httpx.AsyncClient(transport=handler)), store


async def test_retries_until_delivered_and_records_every_attempt() -> None:
    answers = iter([500, 503, 200])
    transport = httpx.MockTransport(lambda request: httpx.Response(next(answers)))
    delivery, store = dispatcher(transport)
    assert await delivery.deliver(notification("good"))
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in store.attempts] == [
        (1, 500, "retry"),
        (2, 503, "retry"),
        (3, 200, "delivered"),
    ]


async def test_retries_wait_by_the_consumer_kits_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one backoff policy; a delivery resumed after a restart resumes its delays."""
    seen: list[int] = []
    original = Backoff.next_delay

    def record(self: Backoff) -> float:
        seen.append(self.attempts)
        return original(self)

    monkeypatch.setattr(Backoff, "next_delay", record)
    answers = iter([500, 500, 200])
    transport = httpx.MockTransport(lambda request: httpx.Response(next(answers)))
    delivery, _ = dispatcher(transport, delivery_max_attempts=5)
    resumed = Notification(1, 1, "good", "firing", MESSAGE, 1)
    assert await delivery.deliver(resumed)
    assert seen == [1, 2]


async def test_refusals_are_not_retried_and_unknown_channels_fail() -> None:
    delivery, store = dispatcher(httpx.MockTransport(lambda request: httpx.Response(400)))
    assert not await delivery.deliver(notification("bad"))
    assert [(a["attempt"], a["outcome"]) for a in store.attempts] == [(1, "failed")]
    assert not await delivery.deliver(notification("missing"))
    assert store.attempts[-1]["error"] == "channel does not exist"


async def test_a_hanging_channel_does_not_hold_up_another() -> None:
    release = asyncio.Event()

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "slow.test":
            await release.wait()
        return httpx.Response(200)

    delivery, store = dispatcher(httpx.MockTransport(handle), delivery_timeout_s=5.0)
    delivery.submit([notification("slow", 1), notification("good", 2)])
    try:
        await eventually(
            lambda: _true(any(a["channel"] == "good" for a in store.attempts)),
            within=2,
            interval=0.01,
            what="the good channel delivered",
        )
        assert not any(a["channel"] == "slow" for a in store.attempts)
    finally:
        release.set()
        await delivery.stop()


async def test_a_full_lane_hands_notifications_back_to_the_outbox() -> None:
    release = asyncio.Event()

    async def handle(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200)

    delivery, store = dispatcher(httpx.MockTransport(handle), delivery_queue_size=1)
    # Submitting never waits: one fits the lane, the rest wait in the outbox for the sweeper.
    delivery.submit([notification("slow", i) for i in range(1, 5)])
    try:
        await eventually(
            lambda: _true(len(store.released) == 3), within=2, interval=0.01, what="released"
        )
        assert sorted(store.released) == [2, 3, 4]
    finally:
        release.set()
        await delivery.stop()


@pytest.mark.parametrize("status", [408, 429, 502])
async def test_transient_statuses_are_retried(status: int) -> None:
    delivery, store = dispatcher(httpx.MockTransport(lambda request: httpx.Response(status)))
    assert not await delivery.deliver(notification("good"))
    assert [a["outcome"] for a in store.attempts] == ["retry", "retry", "failed"]


async def _true(value: bool) -> bool:
    return value


def add_channel(store: FakeStore, name: str, config: dict[str, object]) -> None:
    store.channels[name] = Channel.model_validate({"name": name, "config": config})


async def test_refused_egress_is_one_failed_attempt_with_the_reason() -> None:
    async def private(host: str, port: int) -> list[str]:
        return ["10.0.0.7"]

    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    transport = EgressTransport(EgressPolicy(), inner=httpx.MockTransport(handle), resolver=private)
    delivery, store = dispatcher(transport)
    assert not await delivery.deliver(notification("good"))
    assert seen == []
    (attempt,) = store.attempts
    assert attempt["outcome"] == "failed"
    assert attempt["status_code"] is None
    assert "egress refused" in attempt["error"]
    assert "private" in attempt["error"]
    assert "10.0.0.7" not in attempt["error"]


async def test_a_worker_survives_any_error_and_goes_on() -> None:
    answers: list[object] = [RuntimeError("boom"), 200, 200]

    def handle(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, int)
        return httpx.Response(answer)

    readiness = Readiness()
    delivery, store = dispatcher(httpx.MockTransport(handle))
    delivery.readiness = readiness
    # A channel stored before the header rules: it fails at send time, alone.
    add_channel(
        store,
        "framing",
        {"type": "webhook", "url": "http://good.test/", "headers": {"Content-Length": "5"}},
    )
    delivery.submit([notification("good", 1), notification("good", 2)])
    delivery.submit([notification("framing", 3), notification("framing", 4)])
    try:
        await eventually(
            lambda: _true(len(store.attempts) == 4), within=2, interval=0.01, what="4 attempts"
        )
        by_channel = [(a["channel"], a["outcome"], a["error"]) for a in store.attempts]
        good = [x for x in by_channel if x[0] == "good"]
        assert good == [
            ("good", "failed", "unexpected error while sending (RuntimeError)"),
            ("good", "delivered", None),
        ]
        framing = [x for x in by_channel if x[0] == "framing"]
        assert [x[1] for x in framing] == ["failed", "failed"]
        assert "Content-Length" in str(framing[0][2])
        assert "update the channel" in str(framing[0][2])
        assert not any(w.done() for w in delivery.workers.values())
        assert readiness.failures == {}
        # The lane still works afterwards.
        delivery.submit([notification("good", 5)])
        await eventually(
            lambda: _true(len(store.attempts) == 5), within=2, interval=0.01, what="5th attempt"
        )
    finally:
        await delivery.stop()


async def test_transport_errors_never_quote_the_request() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError("Illegal header value b'Bearer s3cr3t-token'")

    delivery, store = dispatcher(httpx.MockTransport(handle))
    assert not await delivery.deliver(notification("good"))
    (attempt,) = store.attempts  # not retryable: it would fail the same way again
    assert attempt["outcome"] == "failed"
    assert "s3cr3t" not in attempt["error"]
    assert attempt["error"].startswith("LocalProtocolError")


class Fatal(BaseException):
    """Stands for an error no handler in a worker may catch."""


async def test_a_worker_that_dies_makes_the_service_unready_and_its_lane_restarts() -> None:
    readiness = Readiness()
    delivery, store = dispatcher(httpx.MockTransport(lambda request: httpx.Response(200)))
    delivery.readiness = readiness
    record = store.deliveries.record_attempt
    raised = False

    async def record_once_fatally(*args: Any, **kwargs: Any) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Fatal
        await record(*args, **kwargs)

    store.deliveries.record_attempt = record_once_fatally  # type: ignore[method-assign]
    delivery.submit([notification("good", 1)])
    try:
        await eventually(
            lambda: _true("deliver-good" in readiness.failures),
            within=2,
            interval=0.01,
            what="unready",
        )
        assert "Fatal" in readiness.failures["deliver-good"]
        assert "good" not in delivery.workers
        delivery.submit([notification("good", 2)])
        await eventually(
            lambda: _true(len(store.attempts) == 1), within=2, interval=0.01, what="new lane"
        )
        assert store.attempts[0]["outcome"] == "delivered"
    finally:
        await delivery.stop()


async def test_cancellation_is_never_swallowed() -> None:
    started = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    readiness = Readiness()
    delivery, store = dispatcher(httpx.MockTransport(hang), delivery_timeout_s=30.0)
    delivery.readiness = readiness
    delivery.submit([notification("slow", 1)])
    await asyncio.wait_for(started.wait(), 2)
    worker = delivery.workers["slow"]
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    assert worker.cancelled()
    assert store.attempts == []  # a cancelled attempt is not recorded as a failure
    assert readiness.failures == {}
    await delivery.stop()
