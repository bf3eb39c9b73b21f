"""Sending encoded events to the gateway over HTTP, with the retry rules of the contract.

- 202 (and a 207-style partial reply) are acknowledgements: the events are in Kafka.
  Per-item rejects in a partial reply are counted and not retried (they would fail again).
- 429, 503 (and 502/504/408) and connection errors are transient: retried with capped
  exponential backoff, honouring ``Retry-After``, until the owner's deadline.
- Other 5xx are retried a few times; 413 splits the batch; other 4xx are not retried,
  except that a 400/422 naming only some items resends the others once.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from logriver_client.retry import RetryGate, RetryPolicy, parse_retry_after

# The client's own diagnostics; the handler never ships records from this logger.
log = logging.getLogger("logriver_client")

TRANSIENT_STATUS = frozenset({408, 429, 502, 503, 504})
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """One event ready to send: its JSON, plus the Kafka key (the service)."""

    key: str
    data: bytes


@dataclass(slots=True)
class Outcome:
    """What became of a batch. ``failed`` events were given up on (deadline or
    repeated server errors); ``rejected`` ones were refused as invalid or unauthorised."""

    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        self.delivered += other.delivered
        self.rejected += other.rejected
        self.failed += other.failed
        self.errors.extend(other.errors)


class Transport(Protocol):
    def send(self, batch: Sequence[EncodedEvent], gate: RetryGate) -> Outcome: ...

    def close(self) -> None: ...

    def reset_after_fork(self) -> None: ...


class FatalAuthError(Exception):
    """401/403: retrying cannot help until the configuration changes."""


def chunk_by_size(batch: Sequence[EncodedEvent], max_bytes: int) -> list[list[EncodedEvent]]:
    """Split a batch into request bodies of at most ``max_bytes`` (uncompressed NDJSON)."""
    chunks: list[list[EncodedEvent]] = []
    current: list[EncodedEvent] = []
    size = 0
    for event in batch:
        cost = len(event.data) + 1
        if current and size + cost > max_bytes:
            chunks.append(current)
            current, size = [], 0
        current.append(event)
        size += cost
    if current:
        chunks.append(current)
    return chunks


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _item_errors(body: dict[str, Any]) -> dict[int, Any]:
    """``errors: [{"index": i, "errors": [...]}]`` from a partial or 422 reply, by index."""
    found: dict[int, Any] = {}
    # 207 carries them in ``errors``; a 422 (no event valid) in ``detail``.
    errors = body.get("errors")
    if errors is None:
        detail = body.get("detail")
        errors = detail.get("errors") if isinstance(detail, dict) else detail
    if not isinstance(errors, list):
        return found
    for item in errors:
        if isinstance(item, dict) and isinstance(item.get("index"), int):
            found[item["index"]] = item.get("errors", item)
    return found


class HttpTransport:
    """POSTs gzip NDJSON to ``<url>/v1/logs``. Synchronous: it runs in a sender thread."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        compress: bool = True,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        raise_on_auth_error: bool = False,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/v1/logs"
        self.api_key = api_key
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.compress = compress
        self.max_request_bytes = max_request_bytes
        self.raise_on_auth_error = raise_on_auth_error
        self.requests = 0
        self.retries = 0
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def _http(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                headers = {"Content-Type": "application/x-ndjson", "User-Agent": "logriver-client"}
                if self.compress:
                    headers["Content-Encoding"] = "gzip"
                if self.api_key:
                    headers["Authorization"] = f"Bearer {self.api_key}"
                self._client = httpx.Client(headers=headers, timeout=self.timeout)
            return self._client

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def reset_after_fork(self) -> None:
        # The parent's pooled sockets are shared with the child: abandon them without
        # closing (closing could disturb the parent's connections); start afresh.
        self._client = None
        self._client_lock = threading.Lock()

    def send(self, batch: Sequence[EncodedEvent], gate: RetryGate) -> Outcome:
        outcome = Outcome()
        chunks = chunk_by_size(batch, self.max_request_bytes)
        for index, chunk in enumerate(chunks):
            if gate.expired():
                outcome.failed += sum(len(c) for c in chunks[index:])
                outcome.errors.append("gave up: deadline reached")
                break
            outcome.add(self._send_chunk(chunk, gate))
        return outcome

    def _body(self, chunk: Sequence[EncodedEvent]) -> bytes:
        raw = b"\n".join(event.data for event in chunk) + b"\n"
        # Level 5 is most of gzip's ratio on JSON logs for a fraction of level 9's CPU.
        return gzip.compress(raw, compresslevel=5, mtime=0) if self.compress else raw

    def _send_chunk(self, chunk: Sequence[EncodedEvent], gate: RetryGate) -> Outcome:
        body = self._body(chunk)
        attempt = 0
        server_errors = 0
        resent_subset = False
        while True:
            attempt += 1
            retry_after: float | None = None
            reason: str
            try:
                response = self._post(body, gate)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                parsed = _error_body(response)
                if status < 300:
                    return self._acknowledged(chunk, parsed)
                reason = f"HTTP {status} {parsed.get('error', '')}".strip()
                if status in TRANSIENT_STATUS:
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                elif status >= 500:
                    server_errors += 1
                    if server_errors >= self.retry.max_attempts_server_error:
                        log.warning("logriver: giving up on %d events after %s", len(chunk), reason)
                        return Outcome(failed=len(chunk), errors=[reason])
                elif status == 413 and len(chunk) > 1:
                    # Too large for the gateway: halve until it fits (a single event that
                    # is still too large is rejected below, next time round).
                    half = len(chunk) // 2
                    outcome = self._send_chunk(chunk[:half], gate)
                    outcome.add(self._send_chunk(chunk[half:], gate))
                    return outcome
                elif status in (401, 403):
                    detail = f"{reason}: {parsed.get('detail', '')}"
                    if self.raise_on_auth_error:
                        raise FatalAuthError(detail)
                    log.error("logriver: events rejected, check the API key (%s)", detail)
                    return Outcome(rejected=len(chunk), errors=[detail])
                else:
                    bad = _item_errors(parsed)
                    good = [e for i, e in enumerate(chunk) if i not in bad]
                    if bad and good and not resent_subset and status in (400, 422):
                        # The gateway named the bad items: the others deserve delivery.
                        log.warning("logriver: %d of %d events invalid", len(bad), len(chunk))
                        outcome = self._send_chunk(good, gate)
                        outcome.rejected += len(chunk) - len(good)
                        outcome.errors.append(reason)
                        return outcome
                    log.warning("logriver: %d events rejected (%s)", len(chunk), reason)
                    return Outcome(rejected=len(chunk), errors=[f"{reason}: {parsed}"])
            self.retries += 1
            delay = self.retry.delay(attempt, retry_after)
            if not gate.sleep(delay):
                return Outcome(failed=len(chunk), errors=[f"gave up after {reason}"])

    def _post(self, body: bytes, gate: RetryGate) -> httpx.Response:
        timeout = self.timeout
        remaining = gate.remaining()
        if remaining is not None:
            # Never let one request outlive the owner's deadline by much.
            timeout = max(0.1, min(timeout, remaining))
        self.requests += 1
        return self._http().post(self.endpoint, content=body, timeout=timeout)

    @staticmethod
    def _acknowledged(chunk: Sequence[EncodedEvent], body: dict[str, Any]) -> Outcome:
        bad = _item_errors(body)
        accepted = body.get("accepted")
        if not isinstance(accepted, int) or isinstance(accepted, bool):
            accepted = len(chunk) - len(bad)
        errors = [json.dumps({"index": i, "errors": e}, default=str) for i, e in bad.items()]
        if bad:
            log.warning("logriver: gateway rejected %d of %d events", len(bad), len(chunk))
        return Outcome(delivered=accepted, rejected=len(chunk) - accepted, errors=errors)
