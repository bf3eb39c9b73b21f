from __future__ import annotations

from typing import Any, cast

import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect, BulkWriteError, DocumentTooLarge

from logriver_writer.sink import (
    BulkInsert,
    ErrorKind,
    TransientWriteError,
    classify_write_error,
    encoding_problem,
)

Document = dict[str, Any]


class ScriptedCollection:
    """Fails or succeeds as scripted; remembers what each attempt sent."""

    def __init__(self, *outcomes: BaseException | None) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[list[Any]] = []

    async def insert_many(self, documents: list[Document], *, ordered: bool) -> None:
        assert ordered is False
        self.sent.append([doc["_id"] for doc in documents])
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome


def bulk_error(errors: list[tuple[int, int]], write_concern_error: bool = False) -> BulkWriteError:
    details: dict[str, Any] = {
        "writeErrors": [{"index": i, "code": code, "errmsg": f"code {code}"} for i, code in errors],
        "writeConcernErrors": [{"code": 64, "errmsg": "waiting"}] if write_concern_error else [],
    }
    return BulkWriteError(details)


def bulk(collection: ScriptedCollection, count: int = 5) -> BulkInsert:
    docs = [{"_id": f"e{i}"} for i in range(count)]
    return BulkInsert(cast(AsyncCollection[Document], collection), docs)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (11000, ErrorKind.DUPLICATE),
        (10334, ErrorKind.UNSTORABLE),
        (2, ErrorKind.UNSTORABLE),
        (10107, ErrorKind.RETRY),  # NotWritablePrimary
        (189, ErrorKind.RETRY),  # PrimarySteppedDown
        (91, ErrorKind.RETRY),  # ShutdownInProgress
        (121, ErrorKind.RETRY),  # document validation: a collection setting, not the event
        (99999, ErrorKind.RETRY),  # unknown codes are treated as infrastructure
    ],
)
def test_write_errors_are_classified(code: int, kind: ErrorKind) -> None:
    assert classify_write_error(code) is kind


async def test_a_clean_insert_counts_everything_inserted() -> None:
    insert = bulk(ScriptedCollection(None))
    await insert.attempt()
    assert insert.done
    assert (insert.inserted, insert.duplicates) == (5, 0)


async def test_duplicates_count_as_already_stored() -> None:
    insert = bulk(ScriptedCollection(bulk_error([(1, 11000), (3, 11000)])))
    await insert.attempt()
    assert insert.done
    assert (insert.inserted, insert.duplicates) == (3, 2)


async def test_transient_write_errors_retry_only_those_documents() -> None:
    collection = ScriptedCollection(bulk_error([(0, 11000), (2, 10107), (4, 189)]), None)
    insert = bulk(collection)
    with pytest.raises(TransientWriteError):
        await insert.attempt()
    assert insert.pending == [2, 4]
    await insert.attempt()
    assert collection.sent[1] == ["e2", "e4"]
    assert insert.done
    assert (insert.inserted, insert.duplicates) == (4, 1)


async def test_a_write_concern_error_keeps_everything_pending_until_majority_acks() -> None:
    # First attempt: written on the primary, majority not confirmed. Second: the same ids
    # come back as duplicates, which are our own (now durable) inserts, not redeliveries.
    collection = ScriptedCollection(
        bulk_error([(1, 11000)], write_concern_error=True),
        bulk_error([(0, 11000), (1, 11000), (2, 11000), (3, 11000), (4, 11000)]),
    )
    insert = bulk(collection)
    with pytest.raises(TransientWriteError):
        await insert.attempt()
    assert insert.pending == [0, 1, 2, 3, 4]
    assert insert.inserted == 0
    await insert.attempt()
    assert insert.done
    assert (insert.inserted, insert.duplicates) == (4, 1)


async def test_network_errors_leave_the_whole_batch_pending() -> None:
    insert = bulk(ScriptedCollection(AutoReconnect("primary stepped down"), None))
    with pytest.raises(TransientWriteError, match="AutoReconnect"):
        await insert.attempt()
    assert insert.pending == [0, 1, 2, 3, 4]
    await insert.attempt()
    assert insert.done
    assert insert.inserted == 5


async def test_documents_mongodb_refuses_are_set_aside_not_retried() -> None:
    insert = bulk(ScriptedCollection(bulk_error([(2, 10334)])))
    await insert.attempt()
    assert insert.done
    assert insert.inserted == 4
    assert list(insert.unstorable) == [2]
    assert "10334" in insert.unstorable[2]


async def test_an_unencodable_document_is_found_and_the_rest_retried() -> None:
    collection = ScriptedCollection(DocumentTooLarge("too big"), None)
    docs: list[Document] = [{"_id": "ok"}, {"_id": "big", "blob": b"x" * (17 * 1024 * 1024)}]
    insert = BulkInsert(cast(AsyncCollection[Document], collection), docs)
    with pytest.raises(TransientWriteError):
        await insert.attempt()
    assert list(insert.unstorable) == [1]
    await insert.attempt()
    assert collection.sent[1] == ["ok"]
    assert insert.done
    assert insert.inserted == 1


def test_encoding_problem() -> None:
    assert encoding_problem({"_id": "a", "m": "fine"}) is None
    assert "not encodable" in (encoding_problem({"_id": "a", "m": "\ud800"}) or "")
