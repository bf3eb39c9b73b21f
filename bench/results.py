"""One way for every benchmark to report its headline figures to ``bench.run_all``.

Each bench prints its own human-readable table and also calls :func:`publish_figures`;
when ``LOGRIVER_BENCH_RESULTS`` names a file, the figures are appended to it
as one JSON line, which ``bench.run_all`` turns into docs/benchmarks.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import orjson

Figure = float | int | str


def publish_figures(bench: str, figures: Mapping[str, Figure], *, notes: str = "") -> None:
    path = os.environ.get("LOGRIVER_BENCH_RESULTS")
    if not path:
        return
    line = orjson.dumps({"bench": bench, "figures": dict(figures), "notes": notes})
    with Path(path).open("ab") as out:
        out.write(line + b"\n")
