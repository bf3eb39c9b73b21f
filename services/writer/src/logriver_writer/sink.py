"""Step 3: store a batch in MongoDB with ``insert_many(ordered=False)`` and w=majority.

One :class:`BulkInsert` follows one batch across attempts. Each attempt sends
only what is still pending, and every MongoDB error is classified:

* duplicate key (11000): the event is already stored (a redelivery), so done.
  Acknowledging a duplicate with w=majority is safe: for a write that changes
  nothing, the server waits for its latest oplog entry to be majority-committed,
  which covers the earlier insert of that ``_id``.
* the document itself is unacceptable (too large, bad field names): it will
  never succeed, so it goes to the DLQ.
* anything else (no primary, network, write concern, timeouts): transient;
  the document stays pending and the caller retries with backoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import bson
import pymongo
from bson.errors import InvalidDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DocumentTooLarge, PyMongoError
from pymongo.write_concern import WriteConcern

Document = dict[str, Any]

DUPLICATE_KEY = 11000
# Codes MongoDB uses for a document it will never accept, however often it is retried.
UNSTORABLE_CODES = frozenset(
    {
        2,  # BadValue
        52,  # DollarPrefixedFieldName
        55,  # InvalidDBRef
        56,  # EmptyFieldName
        57,  # DottedFieldName
        10334,  # BSONObjectTooLarge
        17280,  # KeyTooLong
        17419,  # document too large after adding fields
    }
)
MAX_BSON_BYTES = 16 * 1024 * 1024


class ErrorKind(StrEnum):
    DUPLICATE = "duplicate"
    UNSTORABLE = "unstorable"
    RETRY = "retry"


def classify_write_error(code: int) -> ErrorKind:
    if code == DUPLICATE_KEY:
        return ErrorKind.DUPLICATE
    if code in UNSTORABLE_CODES:
        return ErrorKind.UNSTORABLE
    return ErrorKind.RETRY


class TransientWriteError(Exception):
    """Some documents are not stored yet; retry after a backoff."""


def majority_collection(
    collection: AsyncCollection[Document],
) -> AsyncCollection[Document]:
    """The collection with w=majority: an insert is acked once it survives a failover."""
    return collection.with_options(write_concern=WriteConcern(w="majority"))


@dataclass
class BulkInsert:
    """Stores ``documents`` exactly once across as many attempts as it takes."""

    collection: AsyncCollection[Document]
    documents: list[Document]
    timeout_s: float = 30.0
    inserted: int = 0
    duplicates: int = 0
    unstorable: dict[int, str] = field(default_factory=dict)
    pending: list[int] = field(init=False)
    # Inserted by an attempt whose write concern failed: not yet known to be durable, and a
    # later duplicate-key error for them is our own write, not somebody else's.
    _unconfirmed: set[int] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.pending = list(range(len(self.documents)))

    @property
    def done(self) -> bool:
        return not self.pending

    async def attempt(self) -> None:
        """One ``insert_many`` of what is pending; raises TransientWriteError if any remains."""
        if not self.pending:
            return
        batch = self.pending
        try:
            # A client-side deadline: a write that hangs (e.g. no majority) becomes retryable.
            with pymongo.timeout(self.timeout_s):
                await self.collection.insert_many([self.documents[i] for i in batch], ordered=False)
        except BulkWriteError as exc:
            self._absorb_bulk_error(batch, dict(exc.details))
        except (DocumentTooLarge, InvalidDocument, OverflowError, UnicodeEncodeError) as exc:
            # Raised while encoding, before the server saw the batch: find the culprits. The
            # canonical decoder lets none of these through; this is the second line of defence.
            self._reject_unencodable(batch, exc)
        except PyMongoError as exc:
            # Outcome unknown (network, no primary, timeout): everything stays pending.
            raise TransientWriteError(f"{type(exc).__name__}: {exc}") from exc
        else:
            self._confirm(batch, errors={})
        if self.pending:
            raise TransientWriteError(f"{len(self.pending)} documents not stored yet")

    def _absorb_bulk_error(self, batch: list[int], details: dict[str, Any]) -> None:
        errors: dict[int, dict[str, Any]] = {
            batch[error["index"]]: error for error in details.get("writeErrors", [])
        }
        if details.get("writeConcernErrors"):
            # Written on the primary but not (yet) on a majority: not durable, so keep every
            # document pending; the retry turns them into acknowledged duplicates.
            for index in batch:
                error = errors.get(index)
                if error is None:
                    self._unconfirmed.add(index)
                elif classify_write_error(int(error["code"])) is ErrorKind.UNSTORABLE:
                    self._mark_unstorable(index, error)
            self.pending = [i for i in batch if i not in self.unstorable]
            return
        self._confirm(batch, errors)

    def _confirm(self, batch: list[int], errors: dict[int, dict[str, Any]]) -> None:
        still_pending = []
        for index in batch:
            error = errors.get(index)
            if error is None:
                self.inserted += 1
                continue
            kind = classify_write_error(int(error["code"]))
            if kind is ErrorKind.DUPLICATE:
                if index in self._unconfirmed:
                    self.inserted += 1  # our own earlier insert, now known to be durable
                else:
                    self.duplicates += 1
            elif kind is ErrorKind.UNSTORABLE:
                self._mark_unstorable(index, error)
            else:
                still_pending.append(index)
        self.pending = still_pending

    def _mark_unstorable(self, index: int, error: dict[str, Any]) -> None:
        self.unstorable[index] = f"MongoDB error {error['code']}: {error.get('errmsg', '')}"

    def _reject_unencodable(self, batch: list[int], exc: Exception) -> None:
        found = False
        for index in batch:
            problem = encoding_problem(self.documents[index])
            if problem is not None:
                self.unstorable[index] = problem
                found = True
        if not found:
            raise TransientWriteError(f"{type(exc).__name__}: {exc}") from exc
        self.pending = [i for i in batch if i not in self.unstorable]


def encoding_problem(document: Document) -> str | None:
    """Why ``document`` cannot be stored as BSON, or None if it can."""
    try:
        size = len(bson.encode(document))
    except (InvalidDocument, UnicodeEncodeError, OverflowError) as exc:
        return f"not encodable as BSON: {exc}"
    if size > MAX_BSON_BYTES:
        return f"document is {size} bytes of BSON; MongoDB stores at most {MAX_BSON_BYTES}"
    return None
