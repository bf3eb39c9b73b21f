"""How an event is stored in MongoDB: the one mapping the writer, query and alerter share.

A document is the normalised event with ``_id`` = event id, native BSON dates
(UTC) and the retention deadline ``expire_at`` that the TTL index acts on.
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


def document_to_event(doc: dict[str, Any]) -> dict[str, Any]:
    """The API view of a stored document: the event's own field names, ISO timestamps."""
    out: dict[str, Any] = {"id": doc["_id"]}
    for key, value in doc.items():
        if key in ("_id", "expire_at"):
            continue
        out[key] = _iso(value) if isinstance(value, datetime) else value
    return out


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
