"""The shipper loop: poll files → batch → send (retrying) → checkpoint after the ack.

One batch is in flight at a time, in file order, so "acknowledged up to offset
N" is simply the end of the last acknowledged record of each stream. Every
record's id is derived from its stream and offset: a batch re-sent after a
crash (sent, acknowledged, but not yet checkpointed) carries the same ids and
is stored once.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TextIO

from logriver_client.ids import line_event_id
from logriver_client.records import check_service, encode_event
from logriver_client.retry import RetryGate, RetryPolicy
from logriver_client.shipper.checkpoint import CheckpointStore, write_atomically
from logriver_client.shipper.parse import record_to_event
from logriver_client.shipper.tail import ShipRecord, Tailer
from logriver_client.shipper.timestamps import DEFAULT_JSON_FIELDS, TimeParser
from logriver_client.transport import EncodedEvent, Transport

log = logging.getLogger("logriver_client.ship")

# While this many batches wait (the gateway is down), no more is read: memory stays
# bounded, and the files (held open by descriptor) are read on where they stopped.
MAX_PENDING_BATCHES = 4


@dataclass(slots=True)
class ShipperConfig:
    patterns: Sequence[str]
    service: str
    checkpoint: Path
    host: str | None = field(default_factory=socket.gethostname)
    env: str | None = None
    multiline_start: str | None = None
    multiline_timeout: float = 1.0
    parse_json: bool = True
    # Where the event time comes from (see timestamps.py); receive time is the fallback.
    time_fields: Sequence[str] = DEFAULT_JSON_FIELDS
    time_format: str = "auto"
    timezone: tzinfo | None = UTC  # for stamps without an offset; None = local time
    batch_size: int = 500
    batch_wait: float = 1.0
    poll_interval: float = 0.25
    rotate_wait: float = 5.0
    start_at_end: bool = False
    progress_interval: float = 30.0
    status_file: Path | None = None
    shutdown_timeout: float = 10.0


@dataclass(slots=True)
class Progress:
    lines: int = 0
    records: int = 0
    delivered: int = 0
    rejected: int = 0
    batches: int = 0
    send_failures: int = 0
    files: int = 0
    backlog_bytes: int = 0
    checkpoint_writes: int = 0
    last_ack_at: float | None = None
    last_error: str | None = None
    # Event times: from the line, or the gateway's receive time (missing or invalid stamp).
    time_parsed: int = 0
    time_missing: int = 0
    time_invalid: int = 0

    def line(self) -> str:
        return (
            f"logriver ship: {self.delivered} delivered, {self.rejected} rejected, "
            f"{self.records} records from {self.lines} lines in {self.files} files, "
            f"{self.backlog_bytes} bytes behind; times: {self.time_parsed} from the line, "
            f"{self.time_missing} missing, {self.time_invalid} invalid (receive time used)"
            + (f"; last error: {self.last_error}" if self.last_error else "")
        )


class Shipper:
    def __init__(
        self,
        config: ShipperConfig,
        transport: Transport,
        *,
        progress_stream: TextIO | None = None,
    ) -> None:
        self.config = config
        self.service = check_service(config.service)
        self.transport = transport
        self.store = CheckpointStore(config.checkpoint)
        pattern = re.compile(config.multiline_start) if config.multiline_start else None
        self.tailer = Tailer(
            config.patterns,
            multiline_start=pattern,
            multiline_timeout=config.multiline_timeout,
            rotate_wait=config.rotate_wait,
            start_at_end=config.start_at_end,
            restored=self.store.load(),
        )
        self.times = TimeParser(tuple(config.time_fields), config.time_format, config.timezone)
        self.progress = Progress()
        self.progress_stream = progress_stream if progress_stream is not None else sys.stderr
        self.gate = RetryGate()
        self.retry = RetryPolicy()
        # Records are encoded once, when read: the event time is judged (and counted)
        # once, and a batch sent again carries exactly the same events.
        self._pending: list[tuple[ShipRecord, EncodedEvent]] = []
        self._pending_since: float | None = None
        self._last_report = time.monotonic()

    # -- one step ----------------------------------------------------------------------

    def poll_once(self, *, final: bool = False) -> int:
        """Read what is new and send every batch that is due; returns records delivered."""
        now = time.monotonic()
        backed_up = len(self._pending) >= self.config.batch_size * MAX_PENDING_BATCHES
        fresh = [] if backed_up else self.tailer.poll(now)
        if fresh:
            if not self._pending:
                self._pending_since = now
            # Only the position is kept of a record once it is encoded: not its text twice.
            self._pending.extend((replace(r, text=""), self._encode(r)) for r in fresh)
            self.progress.records += len(fresh)
        delivered = 0
        while self._pending and (
            final
            or len(self._pending) >= self.config.batch_size
            or now - (self._pending_since or now) >= self.config.batch_wait
        ):
            batch = self._pending[: self.config.batch_size]
            if not self._send(batch):
                break
            delivered += len(batch)
            del self._pending[: len(batch)]
            self._pending_since = now if self._pending else None
        self._update_progress(now)
        return delivered

    def _encode(self, record: ShipRecord) -> EncodedEvent:
        event = record_to_event(
            record.text,
            event_id=line_event_id(record.stream, record.start),
            service=self.service,
            host=self.config.host,
            env=self.config.env,
            source={"log_file": record.path, "log_offset": record.start},
            parse_json=self.config.parse_json,
            times=self.times,
            now=datetime.now(UTC),
        )
        return EncodedEvent(str(event["service"]), encode_event(event))

    def _send(self, batch: list[tuple[ShipRecord, EncodedEvent]]) -> bool:
        """Deliver one batch; True once every record is acknowledged or rejected."""
        if self.tailer.needs_persist():
            # Stream tokens must be durable before their ids leave this process.
            self.save_checkpoint()
        outcome = self.transport.send([encoded for _, encoded in batch], self.gate)
        self.progress.batches += 1
        if outcome.errors:
            self.progress.last_error = outcome.errors[-1][:300]
        if outcome.failed:
            # Given up for now (deadline or a gateway failing repeatedly): nothing is
            # checkpointed; the same records, with the same ids, are sent again later.
            self.progress.send_failures += 1
            self.gate.sleep(self.retry.backoff(self.progress.send_failures))
            return False
        self.progress.send_failures = 0
        self.progress.delivered += outcome.delivered
        self.progress.rejected += outcome.rejected
        self.progress.last_ack_at = time.time()
        self.tailer.acknowledge(record for record, _ in batch)
        self.save_checkpoint()
        return True

    def save_checkpoint(self) -> None:
        self.store.save(self.tailer.states())
        self.tailer.mark_persisted()
        self.progress.checkpoint_writes = self.store.writes

    # -- progress -----------------------------------------------------------------------

    def _update_progress(self, now: float, *, force: bool = False) -> None:
        self.progress.lines = self.tailer.lines_read
        self.progress.files = len(self.tailer.files)
        self.progress.backlog_bytes = self.tailer.backlog_bytes()
        self.progress.time_parsed = self.times.counts["parsed"]
        self.progress.time_missing = self.times.counts["missing"]
        self.progress.time_invalid = self.times.counts["invalid"]
        if not force and now - self._last_report < self.config.progress_interval:
            return
        self._last_report = now
        if self.config.progress_interval > 0:
            self.progress_stream.write(self.progress.line() + "\n")
            self.progress_stream.flush()
        if self.config.status_file is not None:
            status = {"updated_at": time.time(), **asdict(self.progress)}
            write_atomically(self.config.status_file, json.dumps(status).encode())

    # -- the loop -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Ship until ``stop`` is set; then deliver what is read (within the shutdown
        timeout) and write the checkpoint."""
        try:
            while not stop.is_set():
                self.poll_once()
                stop.wait(self.config.poll_interval)
            self.gate.give_up_at(time.monotonic() + self.config.shutdown_timeout)
            self.poll_once(final=True)
        finally:
            self.shutdown()

    def stop_soon(self) -> None:
        """From a signal handler: cut a retrying send short after the shutdown timeout."""
        self.gate.give_up_at(time.monotonic() + self.config.shutdown_timeout)

    def shutdown(self) -> None:
        self.save_checkpoint()
        self._update_progress(time.monotonic(), force=True)
        self.tailer.close()
        self.transport.close()
