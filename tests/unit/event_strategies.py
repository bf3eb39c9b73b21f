"""Hypothesis strategies for event-like objects a client can send (good, bad and odd)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

NOW = datetime.now(UTC)

# Any JSON value, integers well past 64 bits included.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
stamps = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 2),  # noqa: DTZ001
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.sampled_from([UTC, None]),
    ).map(lambda d: d.isoformat()),
    st.builds(
        lambda ago: (NOW - timedelta(seconds=ago)).isoformat(),
        st.integers(min_value=-3600, max_value=10**8),
    ),
    st.integers(min_value=-(10**12), max_value=10**14),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15),
    st.sampled_from(["", "yesterday", "2026-11-25", "2026-11-25T10:00:00+25:00", "0"]),
)
field_values = {
    "service": st.sampled_from(["api", "a.b-c_d", "", "bad name", "api\n", "x" * 65]) | json_values,
    "message": st.text(max_size=50) | json_values,
    "level": st.sampled_from(["warn", "ERROR", " info ", "fatal", "loud", ""]) | json_values,
    "timestamp": stamps,
    "received_at": stamps,
    "trace_id": st.sampled_from(["4bf92f3577b34da6a3ce929d0e0e4736", "0" * 32, "xyz", "A" * 32])
    | json_values,
    "span_id": st.sampled_from(["00f067aa0ba902b7", "0" * 16, "zz"]) | json_values,
    "host": st.text(max_size=8) | json_values,
    "env": st.text(max_size=8) | json_values,
    "metadata": json_values,
    "context": json_values,
    "id": st.sampled_from(["e-1", "a:b.c_d-1", "", "bad id!"]) | json_values,
    "colour": json_values,
}
events = st.fixed_dictionaries(
    {"service": field_values["service"], "message": field_values["message"]},
    optional={k: v for k, v in field_values.items() if k not in ("service", "message")},
)
