"""Traffic generators that remember exactly which events were acknowledged.

Two paths, as real clients use them: HTTP batches to the gateway (client-set
ids, 429/503/connection errors retried with the same ids) and records produced
straight to Kafka (acks=all, retried with the same ids). An event counts as
acknowledged only once the gateway answered 202 or the broker acked it; every
batch is retried until then, so at the end attempted == acknowledged.

A retry after an outcome that may already have published the records (a 503
after the deadline, a timeout, a dropped connection, a Kafka error) can put a
second copy on the topic. Storage absorbs it (``_id``), but the live tail
delivers every record on the topic, so such ids are remembered as
``ambiguous``: a tail client may see them more than once, nothing else may.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from logriver_common.auth import DEV_KEY
from tests.stack import STACK

log = logging.getLogger(__name__)

GATEWAY = "http://127.0.0.1:8000"
TOPIC = "logs.v1"
HEADERS = {"Authorization": f"Bearer {DEV_KEY}"}
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL"})


@dataclass(frozen=True, slots=True)
class Sent:
    service: str
    level: str
    via: str  # "http" or "kafka"


@dataclass
class Ledger:
    """What the generators were told was acknowledged, and what may be on the topic twice."""

    acked: dict[str, Sent] = field(default_factory=dict)
    ambiguous: set[str] = field(default_factory=set)
    retries: Counter[str] = field(default_factory=Counter)  # outcome -> batches retried
    # Sent at least once but given up on (the run ended first): may or may not be stored.
    unacked: set[str] = field(default_factory=set)

    def services(self) -> set[str]:
        return {sent.service for sent in self.acked.values()}

    def for_services(self, services: set[str]) -> set[str]:
        return {event_id for event_id, sent in self.acked.items() if sent.service in services}

    def counts(self) -> dict[str, tuple[int, int]]:
        """service -> (events, errors), the way the query service counts them."""
        events: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        for sent in self.acked.values():
            events[sent.service] += 1
            if sent.level in ERROR_LEVELS:
                errors[sent.service] += 1
        return {service: (events[service], errors[service]) for service in events}

    def levels(self) -> Counter[str]:
        return Counter(sent.level for sent in self.acked.values())


def service_names(run: str, n: int) -> list[str]:
    return [f"e2e-{run}-svc-{i:02d}" for i in range(n)]


def level_of(seq: int) -> str:
    """A fixed mix: 2 % errors, 1 % critical... enough of each for the aggregations."""
    if seq % 50 == 7:
        return "ERROR"
    if seq % 100 == 13:
        return "CRITICAL"
    if seq % 10 == 3:
        return "WARNING"
    if seq % 10 == 5:
        return "DEBUG"
    return "INFO"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventFactory:
    """Events with unique, client-set ids, spread round-robin over the run's services."""

    def __init__(self, run: str, services: list[str]) -> None:
        self.run = run
        self.services = services
        self._seq = itertools.count()

    def make(
        self, via: str, *, service: str | None = None, level: str | None = None
    ) -> dict[str, Any]:
        seq = next(self._seq)
        return {
            "id": f"e2e-{self.run}-{via}-{seq}",
            "timestamp": now_iso(),
            "level": level or level_of(seq),
            "service": service or self.services[seq % len(self.services)],
            "message": f"e2e event {seq} via {via}",
            "metadata": {"run": self.run, "seq": seq, "via": via},
        }

    def batch(self, via: str, size: int) -> list[dict[str, Any]]:
        return [self.make(via) for _ in range(size)]


def _record(ledger: Ledger, events: list[dict[str, Any]], via: str) -> None:
    for event in events:
        ledger.acked[event["id"]] = Sent(event["service"], event["level"], via)


class GatewayClient:
    """POST /v1/logs until the batch is acknowledged (202), retrying with the same ids."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.http = httpx.AsyncClient(base_url=GATEWAY, headers=HEADERS, timeout=15)

    async def close(self) -> None:
        await self.http.aclose()

    async def send(
        self, events: list[dict[str, Any]], *, headers: dict[str, str] | None = None
    ) -> None:
        body = orjson.dumps(events)
        delay = 0.2
        maybe_published = False
        while True:
            outcome: str
            try:
                resp = await self.http.post(
                    "/v1/logs",
                    content=body,
                    headers={"Content-Type": "application/json", **(headers or {})},
                )
            except httpx.TimeoutException:
                outcome, maybe_published = "timeout", True
            except httpx.TransportError:
                # Refused before sending publishes nothing; a reset mid-request might have.
                outcome, maybe_published = "connection", True
            else:
                if resp.status_code == 202:
                    break
                if resp.status_code not in (429, 503):
                    raise AssertionError(f"gateway answered {resp.status_code}: {resp.text[:500]}")
                outcome = str(resp.status_code)
                # 503 means Kafka did not ack in time: some records may still land.
                maybe_published = maybe_published or resp.status_code == 503
                retry_after = resp.headers.get("Retry-After")
                if retry_after is not None:
                    delay = max(delay, min(float(retry_after), 5.0))
            self.ledger.retries[f"http {outcome}"] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        if maybe_published:
            self.ledger.ambiguous.update(event["id"] for event in events)
        _record(self.ledger, events, "http")


class KafkaClient:
    """Produce records as the gateway does (key = service, value = event JSON), acks=all."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.producer = AIOKafkaProducer(
            bootstrap_servers=STACK.kafka,
            acks="all",
            request_timeout_ms=10_000,
            retry_backoff_ms=250,
            linger_ms=5,
        )

    async def start(self) -> None:
        await self.producer.start()

    async def close(self) -> None:
        await self.producer.stop()

    async def send(self, events: list[dict[str, Any]]) -> None:
        received_at = now_iso()
        records = [
            (event["service"].encode(), orjson.dumps({**event, "received_at": received_at}))
            for event in events
        ]
        delay = 0.2
        attempts = 0
        while True:
            attempts += 1
            try:
                futures = [
                    await self.producer.send(TOPIC, value=value, key=key) for key, value in records
                ]
                await asyncio.gather(*futures)
                break
            except (KafkaError, TimeoutError) as exc:
                self.ledger.retries[f"kafka {type(exc).__name__}"] += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        if attempts > 1:
            self.ledger.ambiguous.update(event["id"] for event in events)
        _record(self.ledger, events, "kafka")


class Traffic:
    """Mixed traffic at a fixed pace until stopped, both paths at once."""

    def __init__(
        self,
        factory: EventFactory,
        ledger: Ledger,
        *,
        rate: float,
        http_share: float = 0.7,
        batch_size: int = 50,
        senders: int = 4,
    ) -> None:
        self.factory = factory
        self.ledger = ledger
        self.rate = rate  # events per second, both paths together
        self.http_share = http_share
        self.batch_size = batch_size
        # Concurrent batches per path, so one batch stuck in retries stalls no one else.
        self.senders = senders
        self.gateway = GatewayClient(ledger)
        self.kafka = KafkaClient(ledger)
        self.started = 0.0
        self.drain_s = 60.0
        self.abandoned = 0  # batches given up on after stop() (never acknowledged)
        self._stop = asyncio.Event()

    async def __aenter__(self) -> Traffic:
        await self.kafka.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.gateway.close()
        await self.kafka.close()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Send until ``stop()``; returns once every batch sent has been acknowledged."""
        self.started = time.monotonic()
        queue: asyncio.Queue[tuple[str, list[dict[str, Any]]]] = asyncio.Queue(
            maxsize=self.senders * 4
        )
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.senders * 2)]
        interval = self.batch_size / self.rate
        credit = 0.0
        try:
            for n in itertools.count(1):
                if self._stop.is_set():
                    break
                credit += self.http_share
                via = "http" if credit >= 1.0 else "kafka"
                credit -= 1.0 if via == "http" else 0.0
                # put() blocks while every sender is retrying: pacing then slows down
                # instead of piling up unbounded work during an outage. stop() ends it.
                put = asyncio.ensure_future(
                    queue.put((via, self.factory.batch(via, self.batch_size)))
                )
                stop = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait({put, stop}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                if not put.done():
                    put.cancel()
                    break
                # Fixed pacing of traffic (not a readiness wait): on average one batch per
                # interval, catching up after a stall without bursting beyond the queue.
                delay = self.started + n * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            # Batches still retrying get a bounded time; what is never acknowledged is
            # simply not in the ledger (and must then not be required anywhere).
            done, pending = await asyncio.wait(workers, timeout=self.drain_s)
            self.abandoned = len(pending) + queue.qsize()
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)  # records them as unacked
            for task in done:
                task.result()
        finally:
            for worker in workers:
                worker.cancel()

    async def _worker(self, queue: asyncio.Queue[tuple[str, list[dict[str, Any]]]]) -> None:
        while not (self._stop.is_set() and queue.empty()):
            try:
                via, events = await asyncio.wait_for(queue.get(), timeout=0.5)
            except TimeoutError:
                continue
            try:
                if via == "http":
                    await self.gateway.send(events)
                else:
                    await self.kafka.send(events)
            except asyncio.CancelledError:
                self.ledger.unacked.update(event["id"] for event in events)
                raise
