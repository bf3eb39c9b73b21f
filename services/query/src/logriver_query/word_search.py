"""Whole-word search (``match=word``): the template dictionary first, then those templates' events.

Events carry no per-word index (it cost more MongoDB CPU per stored event than
everything else together, see docs/performance.md). Each event stores its
template hash ``th``, and the writer keeps one dictionary document per template
with the words of its masked text. Masking replaces only words with a digit
(numbers, ids, hex) and UUIDs, so a digit-free word of a message is always in its
template's words. A query therefore:

1. looks the words up in the dictionary (index ``words_last``), among templates
   seen in the window: a handful of documents, however many events they count;
2. reads the events of those templates (index ``th_timestamp_id``; MongoDB merges
   the per-template runs in (timestamp, _id) order, no blocking SORT), each checked
   against the words themselves, so a template's placeholder (``<id>`` has the
   word "id") never returns a message without the word.

When the dictionary cannot answer, the words are matched by the time-sliced
scan that substring search uses (search._sliced_page), which is exact too:
a word with a digit (masked, so never in the dictionary), a word over 40
characters, or a word so common that more than MAX_TEMPLATES templates hold it
(the newest slices then fill a page at once).
"""

from __future__ import annotations

import dataclasses

from logriver_common.indexes import CAPPED, in_dictionary, rollup_collection_names
from logriver_query.filters import LogFilter, TimeRange
from logriver_query.reads import Collection

# MongoDB merges sorted index runs for an $in of at most 200 values
# (internalQueryMaxScansToExplode); past that the plan would sort.
MAX_TEMPLATES = 150


def dictionary_of(events: Collection) -> Collection:
    return events.database.get_collection(
        rollup_collection_names(events.name).dictionary,
        read_preference=events.read_preference,
        read_concern=events.read_concern,
    )


async def resolve(
    events: Collection, flt: LogFilter, window: TimeRange, *, max_time_ms: int
) -> LogFilter:
    """``flt`` with ``templates`` set when the dictionary answers its words, else as it is."""
    if not flt.words or flt.templates is not None:
        return flt
    if not all(in_dictionary(word) for word in flt.words):
        return flt
    found = dictionary_of(events).find(
        {
            # A template with more words than its entry lists may hold any word.
            "$or": [{"words": {"$all": list(flt.words)}}, {"words": CAPPED}],
            "last": {"$gte": window.since},
            "first": {"$lt": window.until},
        },
        {"_id": 1},
        limit=MAX_TEMPLATES + 1,
        max_time_ms=max_time_ms,
    )
    templates = [document["_id"] async for document in found]
    if len(templates) > MAX_TEMPLATES:
        return flt
    return dataclasses.replace(flt, templates=tuple(sorted(templates)))
