"""A shipped record → event: JSON lines become fields, anything else is wrapped as a message."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from logriver_client.records import (
    cap_utf8,
    coerce_service,
    parse_level,
    sanitize_metadata,
    valid_trace_ids,
)

_TIME_KEYS = ("timestamp", "@timestamp", "time", "ts", "datetime")
_LEVEL_KEYS = ("level", "severity", "lvl", "levelname", "log.level")
_MESSAGE_KEYS = ("message", "msg", "@message", "event", "text")
# The first level word near the start of a plain line ("2026-01-01 12:00:00 ERROR ...").
_PLAIN_LEVEL = re.compile(
    r"\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|CRIT|FATAL)\b", re.IGNORECASE
)
# Skew the gateway tolerates is 5 minutes; stay well inside it.
_FUTURE_TOLERANCE_S = 60.0


def _timestamp(value: object) -> str | None:
    """An RFC 3339 timestamp the gateway will accept, or None to let it use receive time."""
    when: datetime | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value) / 1000 if value > 1e11 else float(value)  # epoch ms or s
        try:
            when = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    if when is None or when.timestamp() > datetime.now(UTC).timestamp() + _FUTURE_TOLERANCE_S:
        return None
    return when.astimezone(UTC).isoformat()


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
) -> dict[str, Any]:
    """The event for one record of a file. ``source`` (file, offset) goes into metadata."""
    fields: dict[str, Any] | None = None
    stripped = text.lstrip()
    if parse_json and stripped.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            fields = parsed
    event: dict[str, Any] = {"id": event_id, "service": service}
    metadata: dict[str, Any] = {}
    if fields is None:
        event["message"] = cap_utf8(text)
        match = _PLAIN_LEVEL.search(text[:200])
        event["level"] = (parse_level(match.group(1)) if match else None) or "INFO"
    else:
        message = _pop_first(fields, _MESSAGE_KEYS)
        event["message"] = cap_utf8(message if isinstance(message, str) else text)
        event["level"] = parse_level(_pop_first(fields, _LEVEL_KEYS)) or "INFO"
        timestamp = _timestamp(_pop_first(fields, _TIME_KEYS))
        if timestamp:
            event["timestamp"] = timestamp
        line_service = fields.pop("service", None)
        if isinstance(line_service, str) and line_service:
            event["service"] = coerce_service(line_service)
        ids = valid_trace_ids(fields.pop("trace_id", None), fields.pop("span_id", None))
        if ids:
            event["trace_id"], event["span_id"] = ids
        for key in ("host", "env"):
            value = fields.pop(key, None)
            if isinstance(value, str) and value:
                event[key] = value[:255] if key == "host" else value[:64]
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
