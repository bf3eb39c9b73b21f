"""Opaque, tamper-proof pagination cursors on ``(timestamp, _id)``.

A cursor is ``base64url(payload).base64url(HMAC-SHA256(payload))``. The payload
holds the position (last timestamp in ms and last ``_id``), the sort direction,
a hash of the filter set and the resolved time window. The signature makes a
forged or edited cursor fail, the filter hash makes a cursor from another query
fail, and the pinned window keeps relative bounds ("15m") from sliding between
pages, so pages neither skip nor repeat events while new ones arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import SecretStr

from logriver_common import signing
from logriver_query.filters import EVENT_ID, Order, TimeRange

VERSION = 1
MAX_CURSOR_LENGTH = 1024
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class InvalidCursor(ValueError):
    pass


def to_ms(value: datetime) -> int:
    return (value - EPOCH) // _MS


def from_ms(value: int) -> datetime:
    return EPOCH + value * _MS


@dataclass(frozen=True, slots=True)
class Position:
    timestamp_ms: int
    id: str
    order: Order
    filter_hash: str
    window: TimeRange

    def after(self) -> dict[str, Any]:
        """The MongoDB condition "strictly after this position in sort order".

        The plain timestamp bound lets the index narrow the scan; the `$or`
        breaks ties between events that share a millisecond by `_id`.
        """
        ts = from_ms(self.timestamp_ms)
        strict, tie = ("$lt", "$lt") if self.order == "desc" else ("$gt", "$gt")
        return {"$or": [{"timestamp": {strict: ts}}, {"timestamp": ts, "_id": {tie: self.id}}]}


def encode(position: Position, secret: SecretStr) -> str:
    return signing.sign(
        secret,
        orjson.dumps(
            [
                VERSION,
                position.timestamp_ms,
                position.id,
                position.order,
                position.filter_hash,
                to_ms(position.window.since),
                to_ms(position.window.until),
            ]
        ),
    )


def decode(token: str, secret: SecretStr, *, filter_hash: str, order: Order) -> Position:
    """The position in a cursor issued for this filter set and order, or InvalidCursor."""
    try:
        payload = signing.verify(secret, token, max_length=MAX_CURSOR_LENGTH)
    except signing.SignatureMismatch:
        raise InvalidCursor("cursor signature does not match (edited or truncated?)") from None
    except signing.MalformedToken:
        raise InvalidCursor("malformed cursor") from None
    try:
        values = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise InvalidCursor("malformed cursor") from None
    if not isinstance(values, list) or len(values) != 7 or values[0] != VERSION:
        raise InvalidCursor("unsupported cursor version")
    _, ts, event_id, cursor_order, cursor_hash, since, until = values
    if cursor_hash != filter_hash:
        raise InvalidCursor("this cursor belongs to a different query (filters changed)")
    if cursor_order != order:
        raise InvalidCursor("this cursor was issued for the other sort order")
    if not (
        all(isinstance(v, int) for v in (ts, since, until))
        and isinstance(event_id, str)
        # "" marks a time-slice edge of a substring search (search._edge_page).
        and (event_id == "" or EVENT_ID.match(event_id))
    ):
        raise InvalidCursor("malformed cursor")
    try:
        window = TimeRange(from_ms(since), from_ms(until))
        from_ms(ts)
    except OverflowError:
        raise InvalidCursor("malformed cursor") from None
    return Position(ts, event_id, order, filter_hash, window)
