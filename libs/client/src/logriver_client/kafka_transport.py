"""Direct mode: produce events to Kafka's raw topic instead of going through the gateway.

Direct producers write ``logs.raw.v1``; logriver's relay applies the gateway's
validation, normalisation and redaction and publishes to ``logs.v1``, which only
logriver writes (in Kubernetes, ACLs enforce it). Same JSON as the gateway
takes, keyed by service so one service's events keep their order on one
partition. Needs the ``kafka`` extra (aiokafka). The producer lives on a
private event loop owned by the sender thread, so the app's own loop (if any)
is never involved.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from logriver_client.retry import RetryGate, RetryPolicy
from logriver_client.transport import EncodedEvent, Outcome

log = logging.getLogger("logriver_client")


class KafkaTransport:
    def __init__(
        self,
        bootstrap_servers: str = "127.0.0.1:9092",
        topic: str = "logs.raw.v1",
        *,
        retry: RetryPolicy | None = None,
        request_timeout_ms: int = 10_000,
        producer_options: dict[str, Any] | None = None,
    ) -> None:
        try:
            import aiokafka  # noqa: F401 - fail at construction, not in the sender thread
        except ImportError as exc:
            raise RuntimeError(
                "Kafka mode needs the kafka extra: pip install 'logriver-client[kafka]'"
            ) from exc
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.retry = retry or RetryPolicy()
        self.request_timeout_ms = request_timeout_ms
        self.producer_options = producer_options or {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer: Any = None

    def _run(self, coro: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    async def _start(self) -> Any:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            acks="all",  # acknowledged means durable, as for the gateway
            # Not Kafka-idempotent: aiokafka cannot recover its idempotent producer
            # after a broker restart loses in-flight batches. Event ids make retries
            # and duplicates harmless downstream (the writer stores each id once).
            enable_idempotence=False,
            request_timeout_ms=self.request_timeout_ms,
            **self.producer_options,
        )
        await producer.start()
        return producer

    def send(self, batch: Sequence[EncodedEvent], gate: RetryGate) -> Outcome:
        return self._run(self._send(batch, gate))  # type: ignore[no-any-return]

    async def _send(self, batch: Sequence[EncodedEvent], gate: RetryGate) -> Outcome:
        from aiokafka.errors import KafkaError

        pending = list(batch)
        delivered = 0
        attempt = 0
        while True:
            attempt += 1
            try:
                if self._producer is None:
                    self._producer = await self._start()
                futures = [
                    await self._producer.send(self.topic, value=e.data, key=e.key.encode())
                    for e in pending
                ]
                results = await asyncio.gather(*futures, return_exceptions=True)
            except KafkaError as exc:
                results = [exc] * len(pending)
                await self._discard_producer()
            failed = [e for e, r in zip(pending, results, strict=True) if isinstance(r, Exception)]
            delivered += len(pending) - len(failed)
            if not failed:
                return Outcome(delivered=delivered)
            reason = next(repr(r) for r in results if isinstance(r, Exception))
            log.warning("logriver: %d events not produced yet (%s)", len(failed), reason)
            # Sleeping here blocks only this private loop, which serves nobody else.
            if not gate.sleep(self.retry.backoff(attempt)):
                return Outcome(delivered=delivered, failed=len(failed), errors=[reason])
            pending = failed

    async def _discard_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception:  # already failing; the next send starts a new producer
                log.debug("logriver: producer stop failed", exc_info=True)

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            self._run(self._discard_producer())
        finally:
            self._loop.close()
            self._loop = None

    def reset_after_fork(self) -> None:
        # The parent's loop and producer sockets are not ours: start over lazily.
        self._loop = None
        self._producer = None
