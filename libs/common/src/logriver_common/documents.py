"""How an event is stored in MongoDB: the one mapping the writer, query and alerter share.

A document is the normalised event with ``_id`` = event id, native BSON dates
(UTC) and the retention deadline ``expire_at`` that the TTL index acts on. Readers get
the API's view of it from MongoDB with :data:`EVENT_VIEW`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from logriver_common.event import LogEvent
from logriver_common.event_rule import Event

# The stored fields come from the event rule: the required ones are mapped below, every
# other field of the rule is stored when set. `context` is only an input alias of
# `metadata` (folded into it by the rule), so it is never stored.
_MAPPED = ("id", "timestamp", "level", "service", "message")
_INPUT_ONLY = ("context",)
OPTIONAL_FIELDS = tuple(
    f for f in Event.__struct_fields__ if f not in _MAPPED and f not in _INPUT_ONLY
)

# Level names in severity order; `level >= X` queries use `$in` over a suffix of this.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# What the error summaries, the services' error counts and the error totals count.
ERROR_LEVELS = ("ERROR", "CRITICAL")


def levels_at_or_above(level: str) -> list[str]:
    return list(LEVELS[LEVELS.index(level) :])


def event_to_document(event: Event | LogEvent, expire_at: datetime | None) -> dict[str, Any]:
    """The stored document; a ``LogEvent`` (tests and benchmarks build those) maps alike."""
    doc: dict[str, Any] = {
        "_id": event.id,
        "timestamp": event.when,
        "level": str(event.level),
        "service": event.service,
        "message": event.message,
    }
    for field in OPTIONAL_FIELDS:
        value = getattr(event, field)
        if value is not None:
            doc[field] = value
    if expire_at is not None:
        doc["expire_at"] = expire_at
    return doc


# RFC 3339 in UTC with milliseconds: all a BSON date holds, in a fixed width.
RFC3339_MS = "%Y-%m-%dT%H:%M:%S.%LZ"
_DATES = ("timestamp", "received_at")


def _shown_date(field: str) -> dict[str, Any]:
    """A stored date as the API shows it; a value of another type as it is, a missing one
    left out (``$$REMOVE``: ``$cond`` would otherwise put a null there)."""
    path = f"${field}"
    return {
        "$cond": [
            {"$eq": [{"$type": path}, "date"]},
            {"$dateToString": {"date": path, "format": RFC3339_MS}},
            {"$ifNull": [path, "$$REMOVE"]},
        ]
    }


# The projection that reads a stored document as the API's view of the event: its own
# field names (`id`), dates as RFC 3339 text, no storage bookkeeping (`expire_at`, the
# template hash `th`). MongoDB builds the view: decoding BSON dates into aware datetimes,
# formatting them and renaming fields in Python cost about a third of a page's CPU in the
# query service (docs/query.md, twelfth pass). A field path to a missing field leaves the
# field out.
EVENT_VIEW: dict[str, Any] = {
    "_id": 0,
    "id": "$_id",
    **{
        field: _shown_date(field) if field in _DATES else f"${field}"
        for field in ("timestamp", "level", "service", "message", *OPTIONAL_FIELDS)
    },
}
