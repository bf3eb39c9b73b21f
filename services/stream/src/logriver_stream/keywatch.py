"""Revocation for long-lived streams: the API keys of open streams are rechecked.

A stream outlives the request that authenticated it, so a key check at
subscription time is not enough. One task per instance (not one per
subscriber) asks PostgreSQL every ``key_recheck_seconds`` (at most 2 s) which
of the keys behind open streams are still active, in one query that never
reads a cache, and ends every stream of a key that is not: SSE clients get
``event: error`` with ``key_revoked`` and the response ends; WebSocket clients
get the same error message, then close code 4401. Streams opened with a stream
token are covered the same way, since the token names its key.

A revoked key's streams therefore end within one interval plus one query
(under 5 s), and a stream opened in the instant before the revocation was
seen is caught by the next round.

When PostgreSQL cannot be reached the open streams are kept (and the failure
is logged and counted): a key cannot be revoked while PostgreSQL is down
either, and ending every stream on a database blip would be an outage of its
own.
"""

from __future__ import annotations

import asyncio
import logging

from logriver_common.auth import ApiKeyStore
from logriver_common.clients import POSTGRES_UNAVAILABLE
from logriver_stream import metrics
from logriver_stream.hub import Admission, Hub
from logriver_stream.subscriber import CloseReason

log = logging.getLogger(__name__)

KEY_REVOKED = CloseReason(
    "key_revoked", "the API key of this stream was revoked; use another key to reconnect"
)


class KeyWatch:
    def __init__(
        self, store: ApiKeyStore, admission: Admission, hub: Hub, *, interval_s: float
    ) -> None:
        self._store = store
        self._admission = admission
        self._hub = hub
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def check_once(self) -> set[str]:
        """End the streams of every revoked key; returns the revoked key ids."""
        key_ids = self._admission.key_ids()
        if not key_ids:
            return set()
        active = await self._store.active_ids(key_ids)
        revoked = set(key_ids) - active
        for key_id in revoked:
            for subscriber in self._admission.subscribers(key_id):
                subscriber.close(KEY_REVOKED)
                self._hub.unregister(subscriber)
        if revoked:
            log.info("ended the streams of revoked keys", extra={"key_ids": sorted(revoked)})
        return revoked

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(max(self.interval_s, 1.0)):
                    await self.check_once()
                metrics.KEY_CHECKS.labels("ok").inc()
            except POSTGRES_UNAVAILABLE as exc:
                metrics.KEY_CHECKS.labels("failed").inc()
                log.warning("could not recheck the keys of open streams: %r", exc)
            except Exception:
                # Anything else must not end revocation for the instance's lifetime.
                metrics.KEY_CHECKS.labels("failed").inc()
                log.exception("key recheck failed")
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="stream-key-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
