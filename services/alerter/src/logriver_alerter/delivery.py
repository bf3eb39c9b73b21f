"""Notification delivery: one bounded lane per channel, retries with capped backoff.

A lane is a queue plus one worker, so a channel that fails or hangs holds up
only its own messages; evaluation never waits (``submit`` is non-blocking).
Every notification is a row in the PostgreSQL outbox, leased to this
instance: when a lane is full, or the instance dies, the lease runs out and
the sweeper (here or on another instance) picks it up again.

A worker outlives every error of one notification: an attempt that fails in an
unexpected way is recorded as a failed delivery with a short reason, and the
worker takes the next one. A worker that still stops makes the service unready
and its lane is rebuilt on the next submit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from logriver_alerter import channels, metrics
from logriver_alerter.channel_safety import header_problems
from logriver_alerter.egress import EgressRefused
from logriver_alerter.records import Notification
from logriver_alerter.repositories import Repositories, StorageUnavailable
from logriver_alerter.rules import Channel, WebhookChannel
from logriver_alerter.settings import AlerterSettings
from logriver_common.consumer_kit.backoff import Backoff
from logriver_common.web.health import Readiness

log = logging.getLogger(__name__)
CHANNEL_CACHE_S = 5.0


@dataclass(frozen=True, slots=True)
class AttemptResult:
    ok: bool
    retryable: bool
    status_code: int | None
    error: str | None
    duration_ms: float


class Dispatcher:
    def __init__(
        self,
        store: Repositories,
        settings: AlerterSettings,
        http: httpx.AsyncClient,
        readiness: Readiness | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.http = http
        self.readiness = readiness
        self.lanes: dict[str, asyncio.Queue[Notification]] = {}
        self.workers: dict[str, asyncio.Task[None]] = {}
        self.background: set[asyncio.Task[None]] = set()
        self._channels: dict[str, tuple[float, Channel | None]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="outbox-sweeper")
        self._sweeper.add_done_callback(self._stopped)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        """Delivery loops run until cancelled; any other end is reported, never silent."""
        if task.cancelled() or self._closing:
            return
        exc = task.exception()
        log.error("%s stopped", task.get_name(), exc_info=exc)
        if self.readiness is not None:
            self.readiness.fail(task.get_name(), f"stopped: {exc!r}"[:300], restart=True)
        channel = task.get_name().removeprefix("deliver-")
        if self.workers.get(channel) is task:
            # What its lane held goes back to the outbox when the leases end; the next
            # submit for this channel starts a fresh lane.
            del self.workers[channel]
            self.lanes.pop(channel, None)

    async def stop(self) -> None:
        """Stop workers; hand what is still queued back to the outbox for others."""
        self._closing = True
        tasks = [*self.workers.values(), *self.background]
        if self._sweeper is not None:
            tasks.append(self._sweeper)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        leftovers = [q.get_nowait() for q in self.lanes.values() for _ in range(q.qsize())]
        for notification in leftovers:
            with contextlib.suppress(StorageUnavailable):
                await self.store.deliveries.release(notification.id)

    # -- intake -------------------------------------------------------------------------------

    def submit(self, notifications: Iterable[Notification]) -> None:
        """Queue without waiting; a full lane leaves the notification to the sweeper."""
        for notification in notifications:
            lane = self._lane(notification.channel)
            try:
                lane.put_nowait(notification)
            except asyncio.QueueFull:
                metrics.QUEUE_OVERFLOW.inc()
                self._spawn(self.store.deliveries.release(notification.id))

    def _lane(self, channel: str) -> asyncio.Queue[Notification]:
        lane = self.lanes.get(channel)
        if lane is None:
            lane = self.lanes[channel] = asyncio.Queue(self.settings.delivery_queue_size)
            worker = asyncio.create_task(self._work(channel, lane), name=f"deliver-{channel}")
            worker.add_done_callback(self._stopped)
            self.workers[channel] = worker
        return lane

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                free = sum(q.maxsize - q.qsize() for q in self.lanes.values()) or 100
                orphans = await self.store.deliveries.claim_orphans(
                    min(free, 500), self.settings.delivery_lease_s
                )
                if orphans:
                    log.info("claimed notifications from the outbox", extra={"count": len(orphans)})
                self.submit(orphans)
            except StorageUnavailable as exc:
                log.warning("outbox sweep failed", extra={"error": str(exc)})
            except Exception:
                log.exception("outbox sweep failed unexpectedly")
            await asyncio.sleep(self.settings.outbox_sweep_s)

    # -- delivery -----------------------------------------------------------------------------

    async def _work(self, name: str, lane: asyncio.Queue[Notification]) -> None:
        while True:
            notification = await lane.get()
            try:
                await self.deliver(notification)
            except StorageUnavailable as exc:
                # Recording failed; the lease runs out and the sweeper retries it.
                log.warning(
                    "delivery bookkeeping failed", extra={"channel": name, "error": str(exc)}
                )
            except Exception:
                # Not expected (attempts catch their own errors); the lease runs out and
                # the sweeper retries it, while this lane goes on with the next one.
                log.exception(
                    "delivery failed unexpectedly",
                    extra={"channel": name, "notification_id": notification.id},
                )
            finally:
                lane.task_done()

    async def channel(self, name: str) -> Channel | None:
        now = time.monotonic()
        cached = self._channels.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self.store.channels.get(name)
        self._channels[name] = (now + CHANNEL_CACHE_S, found)
        return found

    async def deliver(self, notification: Notification) -> bool:
        """All attempts for one notification, each recorded; True when delivered."""
        settings = self.settings
        problem: str | None = None
        try:
            channel = await self.channel(notification.channel)
        except ValidationError:
            channel, problem = None, "the stored channel definition is no longer valid"
        if channel is None and problem is None:
            problem = "channel does not exist"
        attempt = notification.attempts
        # The one backoff policy (the consumer kit's); a resumed delivery resumes its delays.
        backoff = Backoff(settings.delivery_backoff_s, settings.delivery_backoff_max_s)
        backoff.attempts = attempt
        while attempt < settings.delivery_max_attempts:
            attempt += 1
            if channel is None:
                result = AttemptResult(False, False, None, problem, 0.0)
            else:
                result = await self.attempt(channel, notification)
            last = attempt >= settings.delivery_max_attempts
            outcome = (
                "delivered" if result.ok else "retry" if result.retryable and not last else "failed"
            )
            metrics.NOTIFICATIONS.labels(
                channel.config.type if channel else "unknown", notification.channel, outcome
            ).inc()
            await self.store.deliveries.record_attempt(
                notification,
                attempt,
                status_code=result.status_code,
                outcome=outcome,
                error=result.error,
                duration_ms=result.duration_ms,
                lease_s=settings.delivery_lease_s,
            )
            if outcome != "retry":
                if outcome == "failed":
                    log.warning(
                        "notification failed",
                        extra={"channel": notification.channel, "error": result.error},
                    )
                return outcome == "delivered"
            await asyncio.sleep(backoff.next_delay())
        return False

    async def attempt(self, channel: Channel, notification: Notification) -> AttemptResult:
        """One attempt; never raises (except cancellation): every failure is a result."""
        started = time.perf_counter()
        try:
            return await self._send(channel, notification, started)
        except Exception as exc:
            log.exception("delivery attempt failed unexpectedly", extra={"channel": channel.name})
            error = f"unexpected error while sending ({type(exc).__name__})"
            return AttemptResult(False, False, None, error, _ms(started))

    async def _send(
        self, channel: Channel, notification: Notification, started: float
    ) -> AttemptResult:
        config = channel.config
        if isinstance(config, WebhookChannel):
            # A channel stored before the header rules existed: refuse, and say how to fix it.
            problems = header_problems(config.headers, [])
            if problems:
                first = problems[0]
                error = f"header {first['loc'][-1]}: {first['msg']}; update the channel"
                return AttemptResult(False, False, None, error[:300], 0.0)
        prepared = channels.prepare(config, notification.message, datetime.now(UTC))
        headers = {**prepared.headers, "X-Logriver-Notification-Id": str(notification.id)}
        timeout = self.settings.delivery_timeout_s
        try:
            # httpx's timeout is per phase; the outer bound caps a receiver that trickles bytes
            # (and a name that takes long to resolve).
            async with asyncio.timeout(timeout + 1):
                response = await self.http.post(
                    prepared.url,
                    content=prepared.body,
                    headers=headers,
                    timeout=timeout,
                    follow_redirects=False,
                )
        except EgressRefused as exc:
            return AttemptResult(False, exc.retryable, None, exc.reason, _ms(started))
        except (httpx.TimeoutException, TimeoutError):
            return AttemptResult(False, True, None, f"timed out after {timeout}s", _ms(started))
        except httpx.HTTPError as exc:
            retryable, error = transport_error(exc)
            return AttemptResult(False, retryable, None, error, _ms(started))
        reply = channels.interpret(config, response.status_code, response.content)
        status = response.status_code
        return AttemptResult(reply.ok, reply.retryable, status, reply.error, _ms(started))


def transport_error(exc: httpx.HTTPError) -> tuple[bool, str]:
    """(retryable, reason). A fixed phrase per kind: httpx's own messages can quote the
    URL or a header value, which are secrets."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return True, f"{kind}: could not connect to the receiver"
    if isinstance(exc, httpx.LocalProtocolError):
        return False, f"{kind}: the request could not be sent as configured"
    if isinstance(exc, httpx.RemoteProtocolError):
        return True, f"{kind}: the receiver broke the HTTP protocol"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return False, f"{kind}: the channel URL cannot be used"
    if isinstance(exc, httpx.NetworkError):
        return True, f"{kind}: the connection failed"
    return True, f"{kind}: the request failed"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def test_fire(
    dispatcher: Dispatcher, channel: Channel, notification: Notification
) -> AttemptResult:
    """One attempt, now, recorded like any other; for the API's "send a test" button."""
    result = await dispatcher.attempt(channel, notification)
    metrics.NOTIFICATIONS.labels(
        channel.config.type, channel.name, "delivered" if result.ok else "failed"
    ).inc()
    await dispatcher.store.deliveries.record_attempt(
        notification,
        1,
        status_code=result.status_code,
        outcome="delivered" if result.ok else "failed",
        error=result.error,
        duration_ms=result.duration_ms,
        lease_s=dispatcher.settings.delivery_lease_s,
    )
    return result
