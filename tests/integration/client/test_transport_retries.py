"""Retry rules of the HTTP transport, against a scripted loopback stand-in for the gateway.

Integration tier: a loopback HTTP server is a socket (`make unit` opens none)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from logriver_client.retry import RetryGate, RetryPolicy
from logriver_client.transport import (
    EncodedEvent,
    FatalAuthError,
    HttpTransport,
    Outcome,
)
from tests.integration.client.fake_gateway import FakeGateway, Reply, fake_gateway

pytestmark = [pytest.mark.integration]

FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)


def events(n: int) -> list[EncodedEvent]:
    return [EncodedEvent("svc", f'{{"id":"e{i}","service":"svc","message":"m{i}"}}'.encode())
            for i in range(n)]  # fmt: skip


def send(
    gateway: FakeGateway,
    batch: list[EncodedEvent],
    *,
    retry: RetryPolicy = FAST,
    raise_on_auth_error: bool = False,
) -> tuple[Outcome, HttpTransport]:
    transport = HttpTransport(
        gateway.url, "k", retry=retry, raise_on_auth_error=raise_on_auth_error
    )
    try:
        return transport.send(batch, RetryGate()), transport
    finally:
        transport.close()


def test_posts_gzip_ndjson_with_bearer_key() -> None:
    with fake_gateway() as gateway:
        outcome, _ = send(gateway, events(3))
        request = gateway.requests[0]
    assert outcome.delivered == 3
    assert request.headers["Authorization"] == "Bearer k"
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.headers["Content-Type"] == "application/x-ndjson"
    assert [e["id"] for e in request.events] == ["e0", "e1", "e2"]


@pytest.mark.parametrize("status", [429, 503])
def test_transient_status_is_retried_honouring_retry_after(status: int) -> None:
    with fake_gateway() as gateway:
        gateway.replies.extend([Reply(status, {"Retry-After": "1"}, {"error": "busy"}), Reply()])
        outcome, transport = send(gateway, events(2), retry=RetryPolicy(base_delay=5, max_delay=5))
        first, second = gateway.requests
    assert outcome.delivered == 2
    assert transport.retries == 1
    # Retry-After (1 s) was honoured instead of the 5 s backoff.
    assert 0.9 <= second.at - first.at < 4
    # The retry carries the same ids, so a retry after a lost reply is stored once.
    assert [e["id"] for e in first.events] == [e["id"] for e in second.events]


def test_connection_errors_are_retried_until_the_gateway_is_up() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = HttpTransport(f"http://127.0.0.1:{port}", "k", retry=FAST)
    result: list[Outcome] = []
    sender = threading.Thread(target=lambda: result.append(transport.send(events(4), RetryGate())))
    sender.start()
    try:
        deadline = time.monotonic() + 10
        while transport.retries < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert transport.retries >= 3
        with fake_gateway(port) as gateway:
            sender.join(10)
            assert len(gateway.events()) == 4
    finally:
        sender.join(10)
        transport.close()
    assert result[0].delivered == 4


@pytest.mark.parametrize("status", [400, 422, 404])
def test_client_errors_are_not_retried(status: int) -> None:
    with fake_gateway() as gateway:
        gateway.replies.append(Reply(status, body={"error": "validation_failed", "detail": []}))
        outcome, _ = send(gateway, events(3))
        assert len(gateway.requests) == 1
    assert (outcome.delivered, outcome.rejected, outcome.failed) == (0, 3, 0)
    assert "validation_failed" in outcome.errors[0]


def test_auth_errors_are_reported_or_raised() -> None:
    with fake_gateway() as gateway:
        gateway.replies.extend([Reply(401, body={"error": "unauthorized"})] * 2)
        outcome, _ = send(gateway, events(2))
        assert outcome.rejected == 2
        with pytest.raises(FatalAuthError):
            send(gateway, events(2), raise_on_auth_error=True)
        assert len(gateway.requests) == 2


def test_partial_reply_counts_each_rejected_item() -> None:
    partial = {"accepted": 3, "ids": ["e0", "e2", "e3"],
               "errors": [{"index": 1, "errors": [{"loc": ["level"], "msg": "bad"}]}]}  # fmt: skip
    with fake_gateway() as gateway:
        gateway.replies.append(Reply(207, body=partial))
        outcome, _ = send(gateway, events(4))
    assert (outcome.delivered, outcome.rejected) == (3, 1)
    assert '"index": 1' in outcome.errors[0]


def test_a_422_naming_some_items_resends_the_others_once() -> None:
    body = {"error": "validation_failed", "errors": [{"index": 0, "errors": ["bad"]}]}
    with fake_gateway() as gateway:
        gateway.replies.append(Reply(422, body=body))
        outcome, _ = send(gateway, events(3))
        second = gateway.requests[1]
    assert [e["id"] for e in second.events] == ["e1", "e2"]
    assert (outcome.delivered, outcome.rejected) == (2, 1)


def test_413_splits_the_batch() -> None:
    with fake_gateway() as gateway:
        gateway.replies.append(Reply(413, body={"error": "payload_too_large"}))
        outcome, _ = send(gateway, events(8))
        sizes = [len(r.events) for r in gateway.requests]
    assert sizes == [8, 4, 4]
    assert outcome.delivered == 8


def test_other_server_errors_are_retried_a_bounded_number_of_times() -> None:
    with fake_gateway() as gateway:
        gateway.replies.extend([Reply(500, body={"error": "internal"})] * 10)
        outcome, _ = send(gateway, events(2))
        assert len(gateway.requests) == FAST.max_attempts_server_error
    assert outcome.failed == 2


def test_gate_deadline_stops_retrying() -> None:
    with fake_gateway() as gateway:
        gateway.replies.extend([Reply(503, {"Retry-After": "30"})] * 5)
        transport = HttpTransport(gateway.url, "k", retry=FAST)
        gate = RetryGate()
        gate.give_up_at(time.monotonic() + 0.3)
        started = time.monotonic()
        outcome = transport.send(events(2), gate)
        transport.close()
    assert outcome.failed == 2
    assert time.monotonic() - started < 2


def test_a_422_listing_every_item_in_detail_rejects_the_batch_once() -> None:
    # The gateway's shape when no event was valid: detail is the per-item list.
    detail = [{"index": 0, "errors": []}, {"index": 1, "errors": []}]
    with fake_gateway() as gateway:
        gateway.replies.append(Reply(422, body={"error": "validation_failed", "detail": detail}))
        outcome, _ = send(gateway, events(2))
        assert len(gateway.requests) == 1
    assert (outcome.delivered, outcome.rejected) == (0, 2)
