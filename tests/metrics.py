"""Reading a service's Prometheus exposition in tests: one parser for every suite."""

from __future__ import annotations


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
