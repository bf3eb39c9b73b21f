"""Validate items one by one into Kafka records, redacting as we go: the door's rule.

The gateway (HTTP) and the relay (the raw topic) both admit events through
:func:`validate_items`, so an event reaches ``logs.v1`` only if it passed the
one ``LogEvent`` rule, the time policy (retention would not delete it at once)
and redaction. A bad item never fails its neighbours: it becomes
``{"index": i, "errors": [...]}``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from logriver_common.event import limits_of, new_event_id
from logriver_common.event_rule import Event, EventInvalid, admit_decoded, admit_object, encode
from logriver_common.retention import RetentionPolicy
from logriver_ingest.parsing import LineError
from logriver_ingest.publisher import Record
from logriver_ingest.redaction import Redactor


@dataclass(slots=True)
class ValidatedBatch:
    records: list[Record] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    redactions: Counter[str] = field(default_factory=Counter)


def _item_error(index: int, msg: str, kind: str) -> dict[str, Any]:
    return {"index": index, "errors": [{"loc": [], "msg": msg, "type": kind}]}


def shortest_retention(policy: RetentionPolicy) -> timedelta | None:
    """The shortest retention anywhere in the policy (None: everything is kept forever).

    An event younger than it cannot be refused by the policy, whatever its
    service and level: most events (sent as they happen) skip the full lookup.
    """
    values = [policy.default, *policy.levels.values()]
    for service in policy.services.values():
        values += [service.default, *service.levels.values()]
    finite = [value for value in values if value is not None]
    return min(finite) if finite else None


def validate_items(
    items: list[Any],
    *,
    context: dict[str, Any],
    received_at: datetime,
    redactor: Redactor,
    retention: RetentionPolicy,
) -> ValidatedBatch:
    batch = ValidatedBatch()
    limits = limits_of(context)
    shortest = shortest_retention(retention)
    for index, item in enumerate(items):
        try:
            if isinstance(item, Event):  # typed already (parsing.split_items' fast path)
                # The gateway owns received_at: a client-sent value is overwritten.
                item.received_at = received_at
                event = admit_decoded(item, limits=limits, now=received_at)
            elif isinstance(item, dict):
                item["received_at"] = received_at
                event = admit_object(item, limits=limits, now=received_at)
            elif isinstance(item, LineError):
                batch.errors.append(_item_error(index, item.message, "json_invalid"))
                continue
            else:
                msg = f"an event must be a JSON object, not {type(item).__name__}"
                batch.errors.append(_item_error(index, msg, "model_type"))
                continue
        except EventInvalid as exc:
            batch.errors.append({"index": index, "errors": [e.as_dict() for e in exc.errors]})
            continue
        if event.id is None:
            event.id = new_event_id()
        refusal = (
            retention.refusal(event, received_at)
            if shortest is not None and event.when + shortest <= received_at
            else None
        )
        if refusal is not None:
            error = {"loc": ["timestamp"], "msg": refusal, "type": "timestamp_expired"}
            batch.errors.append({"index": index, "errors": [error]})
            continue
        redactor.redact_event(event, batch.redactions)
        batch.records.append((event.service.encode(), encode(event)))
        batch.ids.append(event.id)
    return batch
