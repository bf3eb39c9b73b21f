"""The fan-out: one live position for the instance, many subscribers.

The source hands the hub each fetch; the hub advances its position record by
record, evaluates filters (candidates are found through a per-service index,
so a client tailing one service costs nothing for the others' events), stamps
each matching record with the cursor *after* it, and offers every subscriber its
share in one call. Everything here is synchronous: no subscriber can slow the
loop down, only its own queue fills.

A record's cursor is computed once and shared, as are its SSE and WebSocket
frames, so a thousand clients watching the same event cost one encoding.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from logriver_stream import metrics
from logriver_stream.cursor import CursorCodec, merge
from logriver_stream.filters import Filter, RegexTimeout
from logriver_stream.records import StreamRecord
from logriver_stream.subscriber import CloseReason, Subscriber

# (partition, offset, record or None for a record that was skipped as bad)
SourceItem = tuple[int, int, StreamRecord | None]


class TooManySubscribers(Exception):
    def __init__(self, scope: str, limit: int) -> None:
        what = "this API key" if scope == "key" else "this stream instance"
        super().__init__(f"{what} already has {limit} live subscribers (the maximum)")
        self.scope = scope
        self.limit = limit


class Admission:
    """Subscriber limits per API key and per instance, held for a subscription's life."""

    def __init__(self, *, max_total: int, max_per_key: int) -> None:
        self.max_total = max_total
        self.max_per_key = max_per_key
        self.total = 0
        self._per_key: Counter[str] = Counter()

    def acquire(self, key_id: str) -> None:
        if self.total >= self.max_total:
            raise TooManySubscribers("instance", self.max_total)
        if self._per_key[key_id] >= self.max_per_key:
            raise TooManySubscribers("key", self.max_per_key)
        self.total += 1
        self._per_key[key_id] += 1

    def release(self, key_id: str) -> None:
        self.total -= 1
        self._per_key[key_id] -= 1
        if self._per_key[key_id] <= 0:
            del self._per_key[key_id]


class Hub:
    def __init__(self, codec: CursorCodec) -> None:
        self.codec = codec
        # Next offset to process per partition; set by the source when it starts.
        self.position: dict[int, int] = {}
        self._subscribers: set[Subscriber] = set()
        self._by_service: defaultdict[str, set[Subscriber]] = defaultdict(set)
        self._wildcard: set[Subscriber] = set()
        self._floored: set[Subscriber] = set()

    def __len__(self) -> int:
        return len(self._subscribers)

    def register(self, subscriber: Subscriber) -> dict[int, int]:
        """Start offering live records; returns the position the subscriber joins at."""
        self._subscribers.add(subscriber)
        self._index(subscriber)
        if subscriber.floor is not None:
            self._floored.add(subscriber)
        metrics.SUBSCRIBERS.labels(subscriber.transport).inc()
        return dict(self.position)

    def unregister(self, subscriber: Subscriber) -> None:
        if subscriber not in self._subscribers:
            return
        self._subscribers.discard(subscriber)
        self._unindex(subscriber)
        self._floored.discard(subscriber)
        metrics.SUBSCRIBERS.labels(subscriber.transport).dec()

    def set_filter(self, subscriber: Subscriber, new: Filter) -> None:
        """Change a live subscriber's filter; applies from the next record processed."""
        registered = subscriber in self._subscribers
        if registered:
            self._unindex(subscriber)
        subscriber.filter = new
        if registered:
            self._index(subscriber)

    def set_floor(self, subscriber: Subscriber, floor: dict[int, int]) -> None:
        subscriber.floor = floor
        if subscriber in self._subscribers:
            self._floored.add(subscriber)

    def checkpoint(self, subscriber: Subscriber) -> str:
        """The cursor of an idle subscriber: everything processed so far is behind it."""
        if subscriber.floor is not None:
            return self.codec.encode(merge(self.position, subscriber.floor))
        return self.codec.encode(self.position)

    def close_all(self, reason: CloseReason) -> None:
        for subscriber in list(self._subscribers):
            subscriber.close(reason)
            self.unregister(subscriber)

    def publish(self, items: Sequence[SourceItem]) -> None:
        position = self.position
        touched: dict[Subscriber, list[StreamRecord]] = {}
        closed: list[Subscriber] = []
        for partition, offset, record in items:
            position[partition] = offset + 1
            if record is None:
                continue
            specific = self._by_service.get(record.service)
            for group in (specific, self._wildcard):
                if not group:
                    continue
                for subscriber in group:
                    try:
                        if not subscriber.filter.matches(record):
                            continue
                    except RegexTimeout as exc:
                        subscriber.close(CloseReason("regex_timeout", str(exc)))
                        closed.append(subscriber)
                        continue
                    floor = subscriber.floor
                    if floor is None:
                        if not record.cursor:
                            record.cursor = self.codec.encode(position)
                        delivered = record
                    elif offset < floor.get(partition, 0):
                        continue  # already delivered before this subscription resumed
                    else:
                        delivered = record.with_cursor(self.codec.encode(merge(position, floor)))
                    touched.setdefault(subscriber, []).append(delivered)
        for subscriber, records in touched.items():
            subscriber.offer(records)
            if subscriber.closed is not None:
                closed.append(subscriber)
        for subscriber in closed:
            self.unregister(subscriber)
        if self._floored:
            self._release_floors()

    def _release_floors(self) -> None:
        position = self.position
        for subscriber in list(self._floored):
            floor = subscriber.floor
            if floor is None or all(position.get(p, 0) >= o for p, o in floor.items()):
                subscriber.floor = None
                self._floored.discard(subscriber)

    def _index(self, subscriber: Subscriber) -> None:
        services = subscriber.filter.services
        if services is None:
            self._wildcard.add(subscriber)
            return
        for service in services:
            self._by_service[service].add(subscriber)

    def _unindex(self, subscriber: Subscriber) -> None:
        self._wildcard.discard(subscriber)
        services = subscriber.filter.services
        for service in services or ():
            group = self._by_service.get(service)
            if group is not None:
                group.discard(subscriber)
                if not group:
                    del self._by_service[service]
