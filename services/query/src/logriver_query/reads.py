"""Where reads go, and how database failures become HTTP answers.

Lists and aggregations read from secondaries (``secondaryPreferred``) so
search load never competes with the writer on the primary; the staleness bound
keeps a lagging secondary out of rotation. A client that must see its own
write asks for ``consistent=true``: primary plus majority read concern, which
returns everything acknowledged with ``w=majority`` (how the writer writes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    ExecutionTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import Primary, SecondaryPreferred

from logriver_common.web.errors import ApiError

log = logging.getLogger(__name__)
Collection = AsyncCollection[dict[str, Any]]

# Server error codes that mean "this query is too expensive", not "the server is broken".
_TOO_EXPENSIVE = {
    50,  # MaxTimeMSExpired
    292,  # QueryExceededMemoryLimitNoDiskUseAllowed
    16819,  # sort exceeded memory limit (older servers)
}


def reader(collection: Collection, *, consistent: bool, max_staleness_s: int) -> Collection:
    if consistent:
        return collection.with_options(
            read_preference=Primary(), read_concern=ReadConcern("majority")
        )
    return collection.with_options(
        read_preference=SecondaryPreferred(max_staleness=max_staleness_s)
    )


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn timeouts into 400 (narrow the query) and outages into 503 with Retry-After."""
    try:
        yield
    except ExecutionTimeout:
        raise ApiError(
            400,
            "query_too_broad",
            "the query ran out of time; narrow the time range or add filters",
        ) from None
    except (ServerSelectionTimeoutError, AutoReconnect, ConnectionFailure) as exc:
        log.warning("mongodb unavailable: %s", exc)
        raise ApiError(
            503, "unavailable", "the log store is unavailable", headers={"Retry-After": "2"}
        ) from None
    except OperationFailure as exc:
        if exc.code in _TOO_EXPENSIVE:
            raise ApiError(
                400, "query_too_broad", "the query is too expensive; narrow the time range"
            ) from None
        raise
