"""logriver's Python client: a non-blocking logging handler and the ``logriver ship`` file shipper.

Deliberately independent of ``logriver-common``: applications install only this
package (plus ``httpx``; Kafka and OpenTelemetry support are optional extras).
"""

from logriver_client.handler import HandlerStats, LogriverHandler, attach
from logriver_client.retry import RetryPolicy
from logriver_client.transport import EncodedEvent, HttpTransport, Outcome, Transport

__all__ = [
    "EncodedEvent",
    "HandlerStats",
    "HttpTransport",
    "LogriverHandler",
    "Outcome",
    "RetryPolicy",
    "Transport",
    "attach",
]
