"""``LogriverHandler``: a logging handler that never makes the app wait for the network.

``emit`` captures the record (message, level, extras, trace context) into a
bounded queue and returns; a background thread batches, encodes and sends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import traceback
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from logriver_client.queue import DropOldestQueue
from logriver_client.records import (
    PLAIN_RECORD_SIZE,
    PendingRecord,
    check_service,
    encode_event,
    record_to_event,
)
from logriver_client.retry import RetryGate, RetryPolicy
from logriver_client.transport import EncodedEvent, HttpTransport, Outcome, Transport

# Records from these loggers are never shipped: the client's own diagnostics and the
# libraries it sends with would otherwise feed every request back into the queue.
DEFAULT_IGNORED_LOGGERS = ("logriver_client", "httpx", "httpcore", "aiokafka", "kafka")

_live_handlers: weakref.WeakSet[LogriverHandler] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for handler in list(_live_handlers):
        handler._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)

_otel_trace: ModuleType | None = None
_otel_checked = False


def _otel() -> ModuleType | None:
    """opentelemetry.trace if installed; imported on first use so the client works without it."""
    global _otel_trace, _otel_checked
    if not _otel_checked:
        try:
            from opentelemetry import trace  # optional dependency: imported on first use

            _otel_trace = trace
        except ImportError:
            _otel_trace = None
        _otel_checked = True
    return _otel_trace


@dataclass(frozen=True, slots=True)
class HandlerStats:
    enqueued: int
    delivered: int
    rejected: int
    failed: int
    dropped: int
    queued: int
    last_error: str | None


class LogriverHandler(logging.Handler):
    """Ship Python logging records to logriver.

    ``url`` is the ingest gateway (``POST <url>/v1/logs``); ``transport`` replaces it
    (for example :class:`logriver_client.kafka_transport.KafkaTransport`).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        service: str,
        api_key: str | None = None,
        env: str | None = None,
        host: str | None = None,
        level: int | str = logging.NOTSET,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        close_timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        transport: Transport | None = None,
        ignore_loggers: Iterable[str] = DEFAULT_IGNORED_LOGGERS,
        capture_trace: bool = True,
    ) -> None:
        super().__init__(level)
        self.service = check_service(service)
        self.env = env or None
        self.host = (host if host is not None else socket.gethostname())[:255] or None
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self.close_timeout = close_timeout
        self.transport: Transport = transport or HttpTransport(
            url, api_key, retry=retry, timeout=timeout
        )
        self._ignored = tuple(ignore_loggers)
        self._ignored_prefixes = tuple(f"{name}." for name in self._ignored)
        # Looked up once here, not per record; None without opentelemetry-api.
        self._trace = _otel() if capture_trace else None
        self._queue: DropOldestQueue[PendingRecord] = DropOldestQueue(
            queue_size, wake_at=self.batch_size
        )
        self._init_sender_state()
        _live_handlers.add(self)

    def _init_sender_state(self) -> None:
        self._gate = RetryGate()
        self._settled = threading.Condition()
        self._delivered = 0
        self._rejected = 0
        self._failed = 0
        self._last_error: str | None = None
        self._closed = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # -- the app's side ---------------------------------------------------------------

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and emit *without* the handler's lock.

        ``logging.Handler.handle`` serialises every emit on one RLock; ``emit`` here is
        thread-safe on its own, so the app's threads do not queue behind each other. It
        also matters at exit: ``logging.shutdown`` holds that lock while it flushes, and
        the sender thread's own warnings pass through this method.
        """
        passed = self.filter(record)
        if passed:
            self.emit(record)
        return bool(passed)

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        if name in self._ignored or name.startswith(self._ignored_prefixes):
            return
        if self._closed:
            return
        try:
            pending = self._capture(record)
        # The logging contract: a bad format string must not break the app's call.
        except Exception:  # noqa: BLE001 - reported through handleError
            self.handleError(record)
            return
        if self._thread is None:
            self._start()
        self._queue.put(pending)

    def _capture(self, record: logging.LogRecord) -> PendingRecord:
        message = record.getMessage()
        exc_type = None
        if record.exc_info and record.exc_info[0] is not None:
            exc_type = record.exc_info[0].__name__
            if record.exc_text is None:
                record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{record.stack_info}"
        attrs = record.__dict__
        # A record with ``extra`` has more attributes than a plain one. Picking the extra
        # fields out is left to the sender thread: the app's thread only keeps a reference.
        extras = attrs if len(attrs) > PLAIN_RECORD_SIZE else None
        trace_id = span_id = 0
        if self._trace is not None:
            context = self._trace.get_current_span().get_span_context()
            if context.is_valid:
                trace_id, span_id = context.trace_id, context.span_id
        return PendingRecord(
            created=record.created,
            levelno=record.levelno,
            message=message,
            logger=record.name,
            function=record.funcName,
            line=record.lineno,
            extras=extras,
            trace_id=trace_id,
            span_id=span_id,
            exc_type=exc_type,
        )

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="logriver-sender", daemon=True
                )
                self._thread.start()

    # -- the sender thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._queue.wait(self.flush_interval)
                while batch := self._queue.take(self.batch_size):
                    self._send(batch)
                    if self._gate.expired():
                        break
                if self._stopping and (not self._queue or self._gate.expired()):
                    return
        finally:
            # The transport belongs to this thread (Kafka mode runs a private event loop
            # here), so it is closed here, not by whichever thread called close().
            self.transport.close()

    def _send(self, batch: list[PendingRecord]) -> None:
        encoded: list[EncodedEvent] = []
        outcome = Outcome()
        for pending in batch:
            try:
                event = record_to_event(pending, service=self.service, host=self.host, env=self.env)
                encoded.append(EncodedEvent(self.service, encode_event(event)))
            except (TypeError, ValueError) as exc:
                outcome.rejected += 1
                outcome.errors.append(f"could not encode a record: {exc}")
        if encoded:
            try:
                outcome.add(self.transport.send(encoded, self._gate))
            except Exception as exc:  # the sender thread must survive any transport bug
                logging.getLogger("logriver_client").exception("logriver: send failed")
                outcome.failed += len(encoded)
                outcome.errors.append(repr(exc))
        with self._settled:
            self._delivered += outcome.delivered
            self._rejected += outcome.rejected
            self._failed += outcome.failed
            if outcome.errors:
                self._last_error = outcome.errors[-1]
            self._settled.notify_all()

    # -- delivery control -------------------------------------------------------------------

    def stats(self) -> HandlerStats:
        with self._settled:
            return HandlerStats(
                enqueued=self._queue.put_count,
                delivered=self._delivered,
                rejected=self._rejected,
                failed=self._failed,
                dropped=self._queue.dropped,
                queued=len(self._queue),
                last_error=self._last_error,
            )

    def _settled_count(self) -> int:
        return self._delivered + self._rejected + self._failed + self._queue.dropped

    def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Wait until everything logged before this call is delivered (or given up on).

        Returns False when ``timeout`` (default ``close_timeout``) passes first; the
        events stay queued and the sender keeps trying.
        """
        if self._thread is None or not self._thread.is_alive():
            return not self._queue
        target = self._queue.put_count
        deadline = time.monotonic() + (self.close_timeout if timeout is None else timeout)
        self._queue.wake()
        with self._settled:
            while self._settled_count() < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # Drops on overflow do not notify: re-check at least every 50 ms.
                self._settled.wait(min(remaining, 0.05))
        return True

    async def aflush(self, within: float | None = None) -> bool:
        """``flush`` for asyncio apps: waits in a worker thread, not on the event loop."""
        return await asyncio.to_thread(self.flush, within)

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued within ``timeout`` (default ``close_timeout``), then stop.

        Events still undelivered at the deadline are counted as failed.
        """
        with self._start_lock:
            already = self._closed
            self._closed = True
        if not already:
            wait = self.close_timeout if timeout is None else timeout
            thread = self._thread
            if thread is not None and thread.is_alive():
                self._stopping = True
                self._gate.give_up_at(time.monotonic() + wait)
                self._queue.wake()
                thread.join(wait + self.transport_grace())
            else:
                self.transport.close()  # no sender thread ever owned it
            left = len(self._queue.take(len(self._queue)))
            if left:
                with self._settled:
                    self._failed += left
                    self._last_error = f"{left} events undelivered at close"
            _live_handlers.discard(self)
        super().close()

    def transport_grace(self) -> float:
        # A request in flight at the deadline is bounded by its own timeout (capped by the gate).
        return 1.0

    def _reset_after_fork(self) -> None:
        """In a forked child: a fresh queue, locks and sender (started on the next emit).

        The parent's queued events stay the parent's to send, so none is sent twice.
        """
        closed = self._closed
        self._queue.reset_after_fork()
        self._init_sender_state()
        self._closed = closed
        self.transport.reset_after_fork()
        self.createLock()

    def __repr__(self) -> str:
        return f"<LogriverHandler service={self.service} queued={len(self._queue)}>"


def attach(logger: logging.Logger | None = None, **kwargs: Any) -> LogriverHandler:
    """Create a handler and add it to ``logger`` (the root logger by default)."""
    handler = LogriverHandler(**kwargs)
    (logger or logging.getLogger()).addHandler(handler)
    return handler
