"""Loaded by the schemathesis CLI (``SCHEMATHESIS_HOOKS``) in ``test_schemathesis.py``.

The ingest gateway also takes ``application/x-ndjson`` (one event per line);
schemathesis has no serializer for it, so generated values are sent as text
(a string body as is, anything else as one JSON line).
"""

from __future__ import annotations

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(_: schemathesis.SerializationContext, value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        # Generated text may hold lone surrogates: send them as the bytes a broken client would.
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value).encode() + b"\n"
