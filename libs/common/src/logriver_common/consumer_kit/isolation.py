"""Per-record isolation: one record that breaks its handler is set aside, not fatal.

Every consumer loop hands its records to :func:`handle_each`. A handler error
on one record (a bug, or data nobody foresaw) makes that record a
:class:`~logriver_common.consumer_kit.dead_letters.Rejected` with reason
``handler_error``; the loop dead-letters it (or, for the stream, skips and counts
it) and goes on with the next. Cancellation is never swallowed. Failing
infrastructure is not a record's fault and must not get here: handlers retry it
with :class:`~logriver_common.consumer_kit.backoff.Backoff` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

from logriver_common.consumer_kit.dead_letters import Rejected
from logriver_common.consumer_kit.records import Record
from logriver_common.decoding import RejectReason

log = logging.getLogger(__name__)
R = TypeVar("R", bound=Record)
_DETAIL_CHARS = 1_000


def handle_each(records: Iterable[R], handle: Callable[[R], None]) -> list[Rejected]:
    """Call ``handle`` for every record; return the ones it failed on, with the error."""
    failed: list[Rejected] = []
    for record in records:
        try:
            handle(record)
        except Exception as exc:
            log.exception(
                "record handler failed; dead-lettering the record",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                },
            )
            detail = f"{type(exc).__name__}: {exc}"[:_DETAIL_CHARS]
            failed.append(Rejected(record, RejectReason.HANDLER_ERROR, detail))
    return failed
