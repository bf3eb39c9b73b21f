"""W3C ``traceparent`` on an ingest request gives its ids to the events that carry none.

The header names the caller's span (the one that sent the logs), so an event
logged without trace context is still found under the trace of the request
that shipped it. ``tracestate`` holds no ids; it continues with the request's
own trace (the gateway's span and the Kafka headers), nothing more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from logriver_common.event_rule import Event

# version-traceid-parentid-flags, lowercase hex (W3C Trace Context, level 1). A
# future version may append fields after another dash; version ff is invalid.
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?$"
)
MAX_HEADER_CHARS = 512


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str


def parse_traceparent(header: str | None) -> TraceContext | None:
    """The header's ids, or None for an absent or invalid header (ignored, as W3C says)."""
    if not header or len(header) > MAX_HEADER_CHARS:
        return None
    match = _TRACEPARENT.match(header.strip())
    if match is None:
        return None
    version = match["version"]
    if version == "ff" or (version == "00" and match["rest"] is not None):
        return None
    trace_id, span_id = match["trace_id"], match["span_id"]
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return TraceContext(trace_id, span_id)


def fill_trace_context(items: list[Any], context: TraceContext | None) -> None:
    """Set ``trace_id``/``span_id`` on every event object that has no ``trace_id``.

    An event with its own ``trace_id`` keeps it (and its ``span_id``, or none):
    mixing its trace with the request's span would name a span of another trace.
    """
    if context is None:
        return
    for item in items:
        if isinstance(item, Event):
            if item.trace_id is None:
                item.trace_id = context.trace_id
                item.span_id = context.span_id
        elif isinstance(item, dict) and item.get("trace_id") is None:
            item["trace_id"] = context.trace_id
            item["span_id"] = context.span_id
