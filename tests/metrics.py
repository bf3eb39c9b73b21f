"""Reading a service's Prometheus exposition in tests: one parser for every suite."""

from __future__ import annotations

from pathlib import Path

import orjson
from prometheus_client.mmap_dict import MmapedDict


def metric_value(
    exposition: str, name: str, labels: str = "", default: float | None = None
) -> float:
    """The sum of ``name``'s samples whose label set contains ``labels``.

    Raises when no sample matches, unless ``default`` says what that means.
    """
    total, found = 0.0, False
    for line in exposition.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series.split("{", 1)[0] == name and labels in series:
            total += float(value)
            found = True
    if found:
        return total
    if default is None:
        raise AssertionError(f"{name}{{{labels}}} is not exported")
    return default


def worker_counter(metrics_dir: Path, pid: int, name: str) -> float:
    """One worker's own count of ``name`` (all label sets), from its multiprocess file.

    A worker writes its file when it first counts a labelled counter: none yet is 0.
    """
    path = metrics_dir / f"counter_{pid}.db"
    if not path.exists():
        return 0.0
    values = MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
    return sum(float(value) for key, value, _ts, _pos in values if orjson.loads(key)[1] == name)
