"""A shipped record → event: JSON lines become fields, anything else is wrapped as a message."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from logriver_client.records import (
    cap_utf8,
    coerce_service,
    no_nul,
    parse_level,
    sanitize_metadata,
    valid_trace_ids,
)
from logriver_client.shipper.timestamps import TimeParser

_LEVEL_KEYS = ("level", "severity", "lvl", "levelname", "log.level")
_MESSAGE_KEYS = ("message", "msg", "@message", "event", "text")
# The first level word near the start of a plain line ("2026-01-01 12:00:00 ERROR ...").
_PLAIN_LEVEL = re.compile(
    r"\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|CRIT|FATAL)\b", re.IGNORECASE
)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _pop_first(fields: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in fields:
            return fields.pop(key)
    return None


def record_to_event(
    text: str,
    *,
    event_id: str,
    service: str,
    host: str | None,
    env: str | None,
    source: dict[str, Any],
    parse_json: bool = True,
    times: TimeParser | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The event for one record of a file. ``source`` (file, offset) goes into metadata.

    The event time comes from the record (``times``); without one the event has no
    ``timestamp`` and the gateway stamps it with its receive time."""
    times = times if times is not None else TimeParser()
    now = now if now is not None else datetime.now(UTC)
    fields: dict[str, Any] | None = None
    first_line_fields: dict[str, Any] | None = None
    stripped = text.lstrip()
    if parse_json and stripped.startswith("{"):
        fields = _json_object(text)
        if fields is None and "\n" in stripped:
            # A JSON line with a stack trace joined to it: the time is the JSON line's.
            first_line_fields = _json_object(stripped.split("\n", 1)[0])
    event: dict[str, Any] = {"id": event_id, "service": service}
    metadata: dict[str, Any] = {}
    if fields is None:
        if first_line_fields is not None:
            when = times.from_fields(first_line_fields, now)[1]
        else:
            when = times.from_text(stripped, now)
        if when is not None:
            event["timestamp"] = when.isoformat()
        event["message"] = cap_utf8(text)
        match = _PLAIN_LEVEL.search(text[:200])
        event["level"] = (parse_level(match.group(1)) if match else None) or "INFO"
    else:
        message = _pop_first(fields, _MESSAGE_KEYS)
        event["message"] = cap_utf8(message if isinstance(message, str) else text)
        event["level"] = parse_level(_pop_first(fields, _LEVEL_KEYS)) or "INFO"
        key, when = times.from_fields(fields, now)
        if key is not None and when is not None:
            # An unusable time value is kept in metadata: it is what the line said.
            del fields[key]
            event["timestamp"] = when.isoformat()
        line_service = fields.pop("service", None)
        if isinstance(line_service, str) and line_service:
            event["service"] = coerce_service(line_service)
        ids = valid_trace_ids(fields.pop("trace_id", None), fields.pop("span_id", None))
        if ids:
            event["trace_id"], event["span_id"] = ids
        for key in ("host", "env"):
            value = fields.pop(key, None)
            if isinstance(value, str) and value:
                event[key] = no_nul(value[:255] if key == "host" else value[:64])
        nested = fields.pop("metadata", None) or fields.pop("context", None)
        if isinstance(nested, dict):
            metadata.update(nested)
        metadata.update(fields)  # everything else the line carried
    if host and "host" not in event:
        event["host"] = host
    if env and "env" not in event:
        event["env"] = env
    metadata.update(source)
    event["metadata"] = sanitize_metadata(metadata)
    return event
