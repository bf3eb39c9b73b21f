"""The fan-out: one live position for the instance, many subscribers.

The source hands the hub each fetch; the hub advances its position record by
record, evaluates filters (candidates are found through a per-service index,
so a client tailing one service costs nothing for the others' events), stamps
each matching record with the cursor *after* it, and offers every subscriber its
share in one call. Everything here is synchronous: no subscriber can slow the
loop down, only its own queue fills. Regex matching is the one part whose cost
a client chooses, so it runs under its API key's budget (budget.py).

A record's cursor is computed once and shared, as are its SSE and WebSocket
frames, so a thousand clients watching the same event cost one encoding.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from logriver_stream import metrics
from logriver_stream.budget import RegexBudget
from logriver_stream.cursor import CursorCodec, merge
from logriver_stream.filters import Filter
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


class TooManyRegexFilters(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this API key already has {limit} live subscriptions with a regex filter "
            "(the maximum); use q= for substrings, or end another regex subscription"
        )
        self.limit = limit


class Admission:
    """Every open subscription, by API key, with limits per key and per instance.

    Held for a subscription's life (from before its replay until it ends), so
    it is also the registry the key watcher walks to end a revoked key's
    streams, and where the per-key cap on regex subscriptions is kept
    (see budget.py).
    """

    def __init__(self, *, max_total: int, max_per_key: int, max_regex_per_key: int) -> None:
        self.max_total = max_total
        self.max_per_key = max_per_key
        self.max_regex_per_key = max_regex_per_key
        self.total = 0
        self._by_key: dict[str, set[Subscriber]] = {}
        self._regex: Counter[str] = Counter()

    def acquire(self, subscriber: Subscriber) -> None:
        key_id = subscriber.key_id
        held = self._by_key.get(key_id, set())
        if self.total >= self.max_total:
            raise TooManySubscribers("instance", self.max_total)
        if len(held) >= self.max_per_key:
            raise TooManySubscribers("key", self.max_per_key)
        if subscriber.filter.regex is not None:
            self._check_regex(key_id)
            self._regex[key_id] += 1
        self.total += 1
        self._by_key.setdefault(key_id, set()).add(subscriber)

    def release(self, subscriber: Subscriber) -> None:
        key_id = subscriber.key_id
        held = self._by_key.get(key_id)
        if held is None or subscriber not in held:
            return
        held.discard(subscriber)
        if not held:
            del self._by_key[key_id]
        self.total -= 1
        if subscriber.filter.regex is not None:
            self._regex[key_id] -= 1
            if self._regex[key_id] <= 0:
                del self._regex[key_id]

    def check_filter(self, key_id: str, old: Filter | None, new: Filter) -> None:
        """Raise :class:`TooManyRegexFilters` if ``new`` replacing ``old`` exceeds the cap."""
        if new.regex is not None and (old is None or old.regex is None):
            self._check_regex(key_id)

    def replace_filter(self, subscriber: Subscriber, new: Filter) -> None:
        """Account for a held subscriber's filter change (call before the hub applies it)."""
        key_id = subscriber.key_id
        held = subscriber in self._by_key.get(key_id, ())
        self.check_filter(key_id, subscriber.filter if held else None, new)
        if not held:
            return
        had, has = subscriber.filter.regex is not None, new.regex is not None
        if has and not had:
            self._regex[key_id] += 1
        elif had and not has:
            self._regex[key_id] -= 1
            if self._regex[key_id] <= 0:
                del self._regex[key_id]

    def _check_regex(self, key_id: str) -> None:
        if self._regex[key_id] >= self.max_regex_per_key:
            raise TooManyRegexFilters(self.max_regex_per_key)

    def regex_count(self, key_id: str) -> int:
        return self._regex[key_id]

    def key_ids(self) -> list[str]:
        return list(self._by_key)

    def subscribers(self, key_id: str) -> list[Subscriber]:
        return list(self._by_key.get(key_id, ()))


class Hub:
    def __init__(self, codec: CursorCodec, budget: RegexBudget) -> None:
        self.codec = codec
        self.budget = budget
        # Next offset to process per partition; set by the source when it starts.
        self.position: dict[int, int] = {}
        self._subscribers: set[Subscriber] = set()
        self._by_service: defaultdict[str, set[Subscriber]] = defaultdict(set)
        self._wildcard: set[Subscriber] = set()
        self._floored: set[Subscriber] = set()

    def __len__(self) -> int:
        return len(self._subscribers)

    def wants_key(self, key: bytes | None) -> bool:
        """Whether a record with this Kafka key could match any live subscriber.

        The gateway and the relay key every record by its event's service, so a
        record whose key names a service nobody follows (and no subscriber follows
        every service) is dropped without being decoded. A key is only trusted to
        drop: whoever forges one can at worst hide its own record from live tail,
        which it could do by not producing it; a record that is delivered is always
        decoded, and matched on its decoded service.
        """
        if self._wildcard or key is None:
            return True
        try:
            return key.decode() in self._by_service
        except UnicodeDecodeError:
            return True  # not a service name: let the decoder judge it

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

    def publish(self, items: Sequence[SourceItem]) -> dict[StreamRecord, int]:
        """Fan a fetch out; returns how many subscribers got each traced record."""
        traced: dict[StreamRecord, int] = {}
        position = self.position
        run = self.budget.run
        touched: dict[Subscriber, list[StreamRecord]] = {}
        over_budget: Counter[Subscriber] = Counter()
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
                    filter_ = subscriber.filter
                    # A subscriber is in `specific` only if it follows record.service, and
                    # in `_wildcard` only if it follows every service (see _index).
                    if not filter_.service_only and not filter_.matches_fields(record):
                        continue
                    if filter_.regex is not None:
                        matched = run(subscriber.key_id, filter_.matches_regex, record)
                        if matched is None:
                            over_budget[subscriber] += 1
                            continue
                        if not matched:
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
                    if record.producer is not None:
                        traced[record] = traced.get(record, 0) + 1
        for subscriber, records in touched.items():
            subscriber.offer(records)
            if subscriber.closed is not None:
                closed.append(subscriber)
        if over_budget:
            for subscriber, count in over_budget.items():
                subscriber.skip(count)
            metrics.BUDGET_SKIPPED.inc(sum(over_budget.values()))
        for subscriber in closed:
            self.unregister(subscriber)
        if self._floored:
            self._release_floors()
        return traced

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
