"""Pre-computed counts (rollups), message templates and the template dictionary, kept exact
by the writer.

Every stored event adds one to a rollup document per ``(hour, service, level)``
(``n`` for the hour, ``q.<quarter>`` per 15 minutes, ``m.<minute>`` per minute), one per
``(day, service, level)`` (``n``, ``h.<hour>`` and ``hh.<half hour>``: long histograms,
30-minute buckets and summaries read a day from one document) and one per
``(day, service, level, template)`` (for top messages: ``n``, ``last``, and per hour of
the day ``h.<hour>`` and its last event ``l.<hour>``; a day of a template is one document,
not 24). The same counts are also kept as
**totals**, hourly and daily: per level over all services (service ``*``), per service
over all levels (level ``*``) and per service over the error levels (level ``!``), so a
chart with no service filter reads one document per level instead of one per service and
level. A per-level total is kept per Kafka partition
(``shards``): the partition's one writer is the only one to update it, so writers that
count the same level never conflict on it (a write conflict aborts a whole transaction).

Each template also has one dictionary document (``_id`` = its hash ``th``) listing the
words of its text and when it was first and last seen: a whole-word query looks the words
up there and then reads only those templates' events (index ``th_timestamp_id``), so
events need no per-word index.

The writer inserts a batch and applies the batch's aggregated updates in **one MongoDB
transaction** (:class:`TransactionalInsert`), counting only the documents that
transaction inserted: a redelivered event is found to exist already and adds nothing, and
a writer killed mid-batch leaves either both the events and their counts or neither. So
the counts always equal a count over the stored events (until the events' own retention
deletes them; rollups have their own, longer TTL).

The cost per event is a lookup of its message's shape among recent ones (else a few
regex substitutions and a hash) and a dict update; words are read once per template per
batch; MongoDB sees one upsert per bucket per batch, not one per event.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
from bson.errors import InvalidDocument
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DocumentTooLarge, OperationFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from logriver_common.documents import ERROR_LEVELS
from logriver_common.indexes import (
    ALL,
    EPOCH,
    ERRORS,
    RollupCollections,
    dictionary_words,
    rollup_collection_names,
)
from logriver_writer.sink import (
    DUPLICATE_KEY,
    Document,
    ErrorKind,
    TransientWriteError,
    classify_write_error,
    encoding_problem,
)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
HALF_HOUR_MS = HOUR_MS // 2
MINUTE_MS = 60_000
TEMPLATE_CHARS = 200
# How much of a message its template (and so its dictionary words) comes from.
TEMPLATE_SOURCE_CHARS = TEMPLATE_CHARS * 4

# Most specific first: a UUID contains hex runs, a hex run contains digits. Every mask
# but the UUID's replaces only words that contain a digit, so every digit-free word of
# the message stays in its masked text (and so in the dictionary): the guarantee whole-word
# search relies on. Words inside a UUID are not searchable as words.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_MASKS = [
    (_UUID, "<uuid>"),
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<hex>"),
    # Ids: a word that mixes letters and digits (8f3k2, user_1234, abc123); `req-8f3k2`
    # keeps its `req-` (a hyphen is not part of a word).
    (re.compile(r"\b(?=[A-Za-z_]*\d)(?=[\d_]*[A-Za-z])[A-Za-z0-9_]{4,}\b"), "<id>"),
    (re.compile(r"-?\d+(?:\.\d+)?"), "<n>"),
]


_DIGIT = re.compile(r"\d")  # the masks' own notion of a digit (Unicode decimals too)


def masked_text(message: str) -> str:
    """The start of a message with numbers, ids, hex and UUIDs masked; its hash is ``th``.

    The same text as applying every mask in turn, with fewer passes: a UUID needs a
    hyphen, and every other mask matches only text with a digit, so a message without
    one skips them (a property test holds the two to the same output).
    """
    text = message[:TEMPLATE_SOURCE_CHARS]
    if "-" in text:
        text = _UUID.sub("<uuid>", text)
    if _DIGIT.search(text) is None:
        return text
    for pattern, mask in _MASKS[1:]:
        text = pattern.sub(mask, text)
    return text


def template_of(message: str) -> str:
    """The message's template as shown: "timeout after 31 ms" → "timeout after <n> ms"."""
    return masked_text(message)[:TEMPLATE_CHARS]


def template_hash(masked: str) -> int:
    """A signed 64-bit hash of a masked text, stored per event (``th``).

    The hash covers the whole masked text, not only the 200 characters shown, so events
    with one ``th`` share every dictionary word."""
    return int.from_bytes(
        hashlib.blake2b(masked.encode(), digest_size=8).digest(), "big", signed=True
    )


# Every ASCII digit but 0 plays the same part in every mask (only `0x` names one), and the
# masked text keeps no digit, so messages that differ only in those digits share their
# masked text: "took 31 ms" and "took 47 ms" both have the shape "took 11 ms". Remembering
# the masked text of recent shapes spares most messages the regex passes (7 µs → 0.3 µs
# per event on the bench's messages; a message never seen costs 1 µs more). A property
# test holds the shortcut to the full masking. The shape is UTF-8 bytes because
# `bytes.translate` is a table lookup, `str.translate` a dict lookup per character.
_SAME_DIGITS = bytes.maketrans(b"23456789", b"11111111")
_SHAPES_KEPT = 4096  # 4,096 shapes of at most 3.2 kB (800 characters, 4 bytes each)
_masked_shapes: dict[bytes, tuple[str, int]] = {}


def _shape(message: str) -> bytes:
    # No lone surrogate gets here: both JSON decoders of the contract refuse them.
    return message[:TEMPLATE_SOURCE_CHARS].encode().translate(_SAME_DIGITS)


def enrich(document: Document) -> str:
    """Add ``th`` (template hash) to a stored document; return its masked text."""
    shape = _shape(document.get("message", ""))
    known = _masked_shapes.get(shape)
    if known is None:
        if len(_masked_shapes) >= _SHAPES_KEPT:
            _masked_shapes.clear()
        masked = masked_text(shape.decode())
        known = _masked_shapes[shape] = (masked, template_hash(masked))
    document["th"] = known[1]
    return known[0]


class RollupSettings(BaseSettings):
    """``LOGRIVER_ROLLUP_*``: how long pre-computed counts are kept (they may outlive events)."""

    model_config = SettingsConfigDict(env_prefix="LOGRIVER_ROLLUP_", extra="ignore")

    retention_days: int = Field(default=400, ge=1, le=36_500)


@dataclass
class _Bucket:
    n: int = 0
    # Per minute (hourly documents), per half hour (daily ones).
    parts: dict[int, int] = field(default_factory=dict)
    last: datetime | None = None


@dataclass
class _TemplateBucket:
    """A template's events of one ``(day, service, level)`` in a batch: the counts of one
    hour of the day, and of the day's other hours when the batch has them (rare: a batch
    that crosses an hour's end)."""

    hour: int
    template: str
    n: int = 0
    last: datetime | None = None
    other_hours: dict[int, _TemplateBucket] | None = None

    def of_hour(self, hour: int) -> _TemplateBucket:
        if self.other_hours is None:
            self.other_hours = {}
        bucket = self.other_hours.get(hour)
        if bucket is None:
            bucket = self.other_hours[hour] = _TemplateBucket(hour, self.template)
        return bucket

    def hours(self) -> list[_TemplateBucket]:
        return [self, *self.other_hours.values()] if self.other_hours else [self]


@dataclass
class _DictionaryEntry:
    masked: str
    first: datetime
    last: datetime


# One statement of an `update` command: {"q": filter, "u": update, "upsert": True}.
Upsert = dict[str, Any]
# Statements per `update` command: a command is one BSON document (16 MB at most), and a
# template upsert is at most about 1 KB.
UPSERTS_PER_COMMAND = 5_000


@dataclass
class RollupOps:
    """One batch's upserts: hourly counts, template counts, dictionary entries, daily counts,
    and the hourly and daily totals."""

    counts: list[Upsert]
    templates: list[Upsert]
    dictionary: list[Upsert]
    daily: list[Upsert]
    totals: list[Upsert]
    daily_totals: list[Upsert]

    def by_collection(self, names: RollupCollections) -> list[tuple[str, list[Upsert]]]:
        """``(collection name, its upserts)`` for :func:`rollup_collection_names`'s names."""
        return [
            (names.counts, self.counts),
            (names.templates, self.templates),
            (names.dictionary, self.dictionary),
            (names.daily, self.daily),
            (names.totals, self.totals),
            (names.daily_totals, self.daily_totals),
        ]


_ONE_MS = timedelta(milliseconds=1)  # built once: building it per event cost 0.3-0.6 µs


def epoch_ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // _ONE_MS


def counts_id(start_ms: int, service: str, level: str, shard: str = "") -> str:
    """The ``_id`` of an hourly or daily counts document (``start_ms``: its hour or day);
    a per-level total's ``shard`` is ``p<partition>`` (or ``b`` when built by the backfill)."""
    base = f"{start_ms}|{service}|{level}"
    return f"{base}|{shard}" if shard else base


def _count_upsert(
    start_ms: int,
    service: str,
    level: str,
    inc: dict[str, int],
    last: datetime | None,
    retention: timedelta,
    shard: str = "",
) -> Upsert:
    """The upsert of an hourly or daily counts document (``start_ms``: its hour or day)."""
    start = EPOCH + timedelta(milliseconds=start_ms)
    return {
        "q": {"_id": counts_id(start_ms, service, level, shard)},
        "u": {
            "$inc": inc,
            "$max": {"last": last},
            "$setOnInsert": {
                "t": start,
                "service": service,
                "level": level,
                "expire_at": start + retention,
            },
        },
        "upsert": True,
    }


def _count_fields(bucket: _Bucket, fine: str, coarse: str, per: int) -> dict[str, int]:
    """A counts document's ``$inc``: ``n``, each part as ``<fine>.<k>``, and the parts'
    sums per ``per`` of them as ``<coarse>.<k // per>``."""
    inc = {"n": bucket.n}
    sums: dict[int, int] = {}
    for k, n in bucket.parts.items():
        inc[f"{fine}.{k}"] = n
        sums[k // per] = sums.get(k // per, 0) + n
    for k, n in sums.items():
        inc[f"{coarse}.{k}"] = n
    return inc


def _totals(
    buckets: dict[tuple[int, str, str], _Bucket], shards: Mapping[str, int]
) -> dict[tuple[int, str, str, str], _Bucket]:
    """The buckets summed per ``(start, "*", level, shard)``, per ``(start, service, "*")``
    and, for the error levels, per ``(start, service, "!")``: work per bucket, not per event."""
    totals: dict[tuple[int, str, str, str], _Bucket] = {}
    for (start, service, level), bucket in buckets.items():
        keys = [(start, ALL, level, f"p{shards.get(service, 0)}"), (start, service, ALL, "")]
        if level in ERROR_LEVELS:
            keys.append((start, service, ERRORS, ""))
        for key in keys:
            total = totals.get(key)
            if total is None:
                total = totals[key] = _Bucket()
            total.n += bucket.n
            for k, n in bucket.parts.items():
                total.parts[k] = total.parts.get(k, 0) + n
            if total.last is None or (bucket.last is not None and bucket.last > total.last):
                total.last = bucket.last
    return totals


def _template_upsert(
    key: tuple[int, str, str, int], tb: _TemplateBucket, start: datetime, retention: timedelta
) -> Upsert:
    """A daily template document's upsert (``start``: its day): ``n`` and ``last``, and per
    hour ``h.<hour>`` and ``l.<hour>``."""
    day, service, level, th = key
    if tb.other_hours is None:  # the usual case: the batch's events are in one hour
        inc = {"n": tb.n, f"h.{tb.hour}": tb.n}
        latest = {"last": tb.last, f"l.{tb.hour}": tb.last}
    else:
        hours = tb.hours()
        inc = {"n": sum(bucket.n for bucket in hours)}
        latest = {"last": max(bucket.last for bucket in hours if bucket.last is not None)}
        for bucket in hours:
            inc[f"h.{bucket.hour}"] = bucket.n
            latest[f"l.{bucket.hour}"] = bucket.last
    return {
        "q": {"_id": f"{day}|{service}|{level}|{th}"},
        "u": {
            "$inc": inc,
            "$max": latest,
            "$setOnInsert": {
                "t": start,
                "service": service,
                "level": level,
                "th": th,
                "template": tb.template,
                "expire_at": start + retention,
            },
        },
        "upsert": True,
    }


def rollup_updates(
    documents: Iterable[Document],
    masked: Sequence[str],
    *,
    retention: timedelta,
    shards: Mapping[str, int] | None = None,
) -> RollupOps:
    """The batch's upserts: one per ``(hour, service, level)``, per ``(day, service, level,
    template)``, per template, per ``(day, service, level)``, and per total.

    ``masked[i]`` is the masked text of the i-th document (from :func:`enrich`);
    ``shards`` maps each service to the Kafka partition its events came from (a service's
    events are keyed by its name, so they share one), 0 when absent.
    The benchmark loader calls this too, so its rollups are exactly the writer's.
    """
    shards = shards or {}
    counts: dict[tuple[int, str, str], _Bucket] = {}
    days: dict[tuple[int, str, str], _Bucket] = {}
    tpl: dict[tuple[int, str, str, int], _TemplateBucket] = {}  # (day, service, level, th)
    seen: dict[int, _DictionaryEntry] = {}
    for document, text in zip(documents, masked, strict=True):
        ts: datetime = document["timestamp"]
        ms = epoch_ms(ts)
        hour = ms - ms % HOUR_MS
        service, level = document["service"], document["level"]
        key = (hour, service, level)
        bucket = counts.get(key)
        if bucket is None:
            bucket = counts[key] = _Bucket()
        bucket.n += 1
        minute = (ms - hour) // MINUTE_MS
        bucket.parts[minute] = bucket.parts.get(minute, 0) + 1
        if bucket.last is None or ts > bucket.last:
            bucket.last = ts
        day = ms - ms % DAY_MS
        daily = days.get((day, service, level))
        if daily is None:
            daily = days[(day, service, level)] = _Bucket()
        daily.n += 1
        half_hour = (ms - day) // HALF_HOUR_MS
        daily.parts[half_hour] = daily.parts.get(half_hour, 0) + 1
        if daily.last is None or ts > daily.last:
            daily.last = ts
        th = document["th"]
        entry = seen.get(th)
        if entry is None:
            seen[th] = _DictionaryEntry(text, ts, ts)
        elif ts < entry.first:
            entry.first = ts
        elif ts > entry.last:
            entry.last = ts
        tkey = (day, service, level, th)
        hour_of_day = (hour - day) // HOUR_MS
        tb = tpl.get(tkey)
        if tb is None:
            tb = tpl[tkey] = _TemplateBucket(hour_of_day, text[:TEMPLATE_CHARS])
        elif tb.hour != hour_of_day:
            tb = tb.of_hour(hour_of_day)
        tb.n += 1
        if tb.last is None or ts > tb.last:
            tb.last = ts
    # Hourly: minutes, and quarter hours (a 15-minute bucket reads 4 numbers, not 60).
    count_ops = [
        _count_upsert(
            hour, service, level, _count_fields(bucket, "m", "q", 15), bucket.last, retention
        )
        for (hour, service, level), bucket in counts.items()
    ]
    # Daily: half hours (a 24 h chart's 30-minute buckets) and hours (longer histograms);
    # it expires with the first hour of its day.
    daily_ops = [
        _count_upsert(
            day, service, level, _count_fields(bucket, "hh", "h", 2), bucket.last, retention
        )
        for (day, service, level), bucket in days.items()
    ]
    total_ops = [
        _count_upsert(
            hour, service, level, _count_fields(total, "m", "q", 15), total.last, retention, shard
        )
        for (hour, service, level, shard), total in _totals(counts, shards).items()
    ]
    daily_total_ops = [
        _count_upsert(
            day, service, level, _count_fields(total, "hh", "h", 2), total.last, retention, shard
        )
        for (day, service, level, shard), total in _totals(days, shards).items()
    ]
    starts = {day: EPOCH + timedelta(milliseconds=day) for day in {key[0] for key in tpl}}
    template_ops = [_template_upsert(key, tb, starts[key[0]], retention) for key, tb in tpl.items()]
    dictionary_ops = [
        {
            "q": {"_id": th},
            "u": {
                "$min": {"first": entry.first},
                "$max": {"last": entry.last, "expire_at": entry.last + retention},
                # Every event with this hash has this masked text, so these words are final.
                "$setOnInsert": {
                    "template": entry.masked[:TEMPLATE_CHARS],
                    "words": dictionary_words(entry.masked),
                },
            },
            "upsert": True,
        }
        for th, entry in seen.items()
    ]
    return RollupOps(count_ops, template_ops, dictionary_ops, daily_ops, total_ops, daily_total_ops)


_MAJORITY = WriteConcern(w="majority")
# Deterministic outcomes (duplicates found, unstorable documents removed) are retried at
# once, this many times, before the batch is handed back to the caller's backoff.
_IMMEDIATE_RETRIES = 5


@dataclass
class TransactionalInsert:
    """Inserts a batch and its rollup increments atomically, exactly once across attempts.

    The same interface as :class:`logriver_writer.sink.BulkInsert` (``attempt``,
    ``inserted``, ``duplicates``, ``unstorable``, ``done``). The first attempt
    inserts optimistically; a duplicate key (a redelivery) aborts the
    transaction, and the next one first reads which ``_id`` already exist and
    inserts (and counts) only the others.
    """

    collection: AsyncCollection[Document]
    documents: list[Document]
    retention: timedelta = timedelta(days=400)
    # Each service's Kafka partition: which per-level totals this writer updates.
    shards: Mapping[str, int] = field(default_factory=dict)
    timeout_s: float = 60.0
    # Per transaction: a big one does not fit a small WiredTiger cache ("Cache full" conflicts).
    chunk_docs: int = 1_000
    inserted: int = 0
    duplicates: int = 0
    unstorable: dict[int, str] = field(default_factory=dict)
    pending: list[int] = field(init=False)
    _masked: list[str] = field(init=False)
    _check_existing: bool = field(default=False, init=False)
    _attempt_batch: list[int] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.pending = list(range(len(self.documents)))
        self._masked = [enrich(document) for document in self.documents]

    @property
    def done(self) -> bool:
        return not self.pending

    async def attempt(self) -> None:
        """Store what is pending, one transaction per chunk; TransientWriteError if any remains."""
        for _ in range(_IMMEDIATE_RETRIES):
            if not self.pending:
                return
            try:
                while self.pending:
                    chunk = self.pending[: self.chunk_docs]
                    await self._transaction(chunk)
                    done = set(chunk)
                    self.pending = [i for i in self.pending if i not in done]
            except BulkWriteError as exc:
                self._absorb(exc.details.get("writeErrors", []))
            except (DocumentTooLarge, InvalidDocument, OverflowError, UnicodeEncodeError) as exc:
                self._reject_unencodable(exc)
            except OperationFailure as exc:
                if exc.code is not None and classify_write_error(exc.code) is ErrorKind.UNSTORABLE:
                    self._reject_unencodable(exc)
                    continue
                self._check_existing = True
                raise TransientWriteError(f"{type(exc).__name__}: {exc}") from exc
            except PyMongoError as exc:
                # Outcome unknown: if it committed, the next attempt finds duplicates.
                self._check_existing = True
                raise TransientWriteError(f"{type(exc).__name__}: {exc}") from exc
        if self.pending:
            raise TransientWriteError(f"{len(self.pending)} documents not stored yet")

    async def _transaction(self, chunk: list[int]) -> None:
        # Not `with_transaction`: it retries transient errors at once, in a loop, for up to
        # 120 s; here every failure goes back to the consumer's bounded backoff instead.
        with pymongo.timeout(self.timeout_s):
            async with self.collection.database.client.start_session() as session:
                await session.start_transaction(write_concern=_MAJORITY)
                try:
                    inserted, duplicates = await self._write(session, chunk)
                    await session.commit_transaction()
                except BaseException:
                    if session.in_transaction:
                        await session.abort_transaction()
                    raise
        self.inserted += inserted
        self.duplicates += duplicates

    async def _write(self, session: AsyncClientSession, batch: list[int]) -> tuple[int, int]:
        self._attempt_batch = batch
        existing: set[Any] = set()
        if self._check_existing:
            ids = [self.documents[i]["_id"] for i in batch]
            found = self.collection.find({"_id": {"$in": ids}}, {"_id": 1}, session=session)
            existing = {doc["_id"] async for doc in found}
        fresh: list[int] = []
        for index in batch:
            doc_id = self.documents[index]["_id"]
            if doc_id not in existing:
                existing.add(doc_id)  # a second copy within the batch is a duplicate too
                fresh.append(index)
        self._attempt_batch = fresh
        if fresh:
            await self.collection.insert_many(
                [self.documents[i] for i in fresh], ordered=True, session=session
            )
            ops = rollup_updates(
                [self.documents[i] for i in fresh],
                [self._masked[i] for i in fresh],
                retention=self.retention,
                shards=self.shards,
            )
            names = rollup_collection_names(self.collection.name)
            for name, upserts in ops.by_collection(names):
                await apply_upserts(self.collection.database[name], upserts, session=session)
        return len(fresh), len(batch) - len(fresh)

    def _absorb(self, errors: list[dict[str, Any]]) -> None:
        fresh = self._attempt_batch
        for error in errors:
            code = int(error["code"])
            index = fresh[error["index"]]
            if code == DUPLICATE_KEY:
                self._check_existing = True
            elif classify_write_error(code) is ErrorKind.UNSTORABLE:
                self.unstorable[index] = f"MongoDB error {code}: {error.get('errmsg', '')}"
        self.pending = [i for i in self.pending if i not in self.unstorable]
        if not errors:
            self._check_existing = True

    def _reject_unencodable(self, exc: Exception) -> None:
        found = False
        for index in self.pending:
            problem = encoding_problem(self.documents[index])
            if problem is not None:
                self.unstorable[index] = problem
                found = True
        if not found:
            raise TransientWriteError(f"{type(exc).__name__}: {exc}") from exc
        self.pending = [i for i in self.pending if i not in self.unstorable]


async def load(
    collection: AsyncCollection[Document],
    documents: list[Document],
    *,
    retention: timedelta = timedelta(days=400),
) -> None:
    """Store documents with their template hashes, rollups and dictionary, as the writer would.

    For bulk loads (benchmarks, test fixtures) of documents that are not stored yet: no
    transaction and no duplicate check, so it is not exact under retries; the writer uses
    :class:`TransactionalInsert`. Rollups use ``collection``'s write concern.
    """
    masked = [enrich(document) for document in documents]
    await collection.insert_many(documents, ordered=False)
    names = rollup_collection_names(collection.name)
    db = collection.database
    ops = rollup_updates(documents, masked, retention=retention)
    concern = collection.write_concern
    for name, upserts in ops.by_collection(names):
        await apply_upserts(db.get_collection(name, write_concern=concern), upserts)


async def apply_upserts(
    collection: AsyncCollection[Document],
    upserts: list[Upsert],
    *,
    session: AsyncClientSession | None = None,
) -> None:
    """Run ``upserts`` as unordered ``update`` commands; raise on any write error.

    Not ``bulk_write``: it builds and validates an ``UpdateOne`` per statement and then
    converts each again, and a batch holds about one template upsert per event.
    Measured on the bench's 1,000-event batches: 5.8-7.2 µs of client CPU per event for
    the template upserts through ``bulk_write`` (plus 1.2 to build the ``UpdateOne``),
    4.3-4.6 µs as ``update`` commands.
    """
    for start in range(0, len(upserts), UPSERTS_PER_COMMAND):
        command: dict[str, Any] = {
            "update": collection.name,
            "updates": upserts[start : start + UPSERTS_PER_COMMAND],
            "ordered": False,
        }
        in_transaction = session is not None and session.in_transaction
        if not in_transaction and collection.write_concern.document:
            command["writeConcern"] = collection.write_concern.document
        reply = await collection.database.command(command, session=session)
        errors = reply.get("writeErrors") or [reply.get("writeConcernError")]
        if errors[0]:
            error = errors[0]
            raise OperationFailure(
                f"rollup upsert into {collection.name} failed: {error.get('errmsg', '')}",
                code=error.get("code"),
                details=reply,
            )
