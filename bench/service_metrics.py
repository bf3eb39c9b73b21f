"""A service's own Prometheus counters, as the benches read them.

Each scrape costs the service a few milliseconds of CPU (about 3 ms for the writer):
read them a few times per measured round, not in a tight loop.
"""

from __future__ import annotations

import httpx


async def metric(client: httpx.AsyncClient, prefix: str) -> float:
    """The sum of every sample on the service's ``/metrics`` whose line starts ``prefix``
    (``name{`` for all of a metric's labels, ``name `` for an unlabelled one)."""
    text = (await client.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )
