"""Rollup increments, message templates and the template dictionary: the writer's pure
per-batch work."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import assume, example, given
from hypothesis import strategies as st

from logriver_common.indexes import CAPPED, MAX_WORDS, dictionary_words, in_dictionary, words_of
from logriver_writer.rollups import (
    _MASKS,
    enrich,
    masked_text,
    rollup_updates,
    template_hash,
    template_of,
)


def test_templates_mask_numbers_ids_hex_and_uuids() -> None:
    assert template_of("timeout after 31 ms") == template_of("timeout after 47 ms")
    assert template_of("timeout after 31 ms") == "timeout after <n> ms"
    assert template_of("user 9b2f4c1e-0d3a-4f5b-8c6d-7e8f9a0b1c2d not found") == (
        "user <uuid> not found"
    )
    assert template_of("bad pointer 0xdeadbeef at deadbeef12") == "bad pointer <hex> at <hex>"
    assert template_of("request req-8f3k2 failed for user_1234") == (
        "request req-<id> failed for <id>"
    )
    assert template_of("x" * 10_000) == "x" * 200  # bounded


def test_words_are_distinct_lowercase_and_the_dictionary_holds_only_digit_free_ones() -> None:
    assert words_of("Timeout after 31 ms; TIMEOUT again") == [
        "timeout",
        "after",
        "31",
        "ms",
        "again",
    ]
    assert dictionary_words("Timeout after <n> ms; v<n> TIMEOUT") == [
        "timeout",
        "after",
        "n",
        "ms",
        "v",
    ]
    assert not in_dictionary("v1")
    assert not in_dictionary("a" * 41)
    assert in_dictionary("a" * 40)
    many = dictionary_words(" ".join(f"w{'x' * (i % 30)}y{chr(97 + i % 26)}" for i in range(500)))
    assert len(many) == MAX_WORDS + 1
    assert many[-1] == CAPPED


@given(st.text(max_size=300))
def test_every_digit_free_word_of_a_message_is_in_its_masked_text(message: str) -> None:
    """The guarantee whole-word search rests on (UUIDs aside: their parts are not words)."""
    assume(not re.search(r"[0-9a-fA-F]{8}-", message))
    masked = set(words_of(masked_text(message)))
    source = message[:800]
    for word in words_of(source):
        if in_dictionary(word):
            assert word in masked, (word, masked_text(message))


def _doc(ts: datetime, service: str, level: str, message: str) -> dict[str, Any]:
    return {
        "_id": f"{ts}{service}{level}{message}",
        "timestamp": ts,
        "service": service,
        "level": level,
        "message": message,
    }


def _spec(op: dict[str, Any], part: str = "u") -> Any:
    """An upsert statement's filter ("q") or update ("u")."""
    assert op["upsert"] is True
    return op[part]


def test_one_upsert_per_bucket_with_minute_counts() -> None:
    base = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
    docs = [
        _doc(base + timedelta(seconds=5), "api", "ERROR", "timeout after 31 ms"),
        _doc(base + timedelta(seconds=70), "api", "ERROR", "timeout after 47 ms"),
        _doc(base + timedelta(seconds=75), "api", "ERROR", "disk full"),
        _doc(base + timedelta(hours=1), "api", "ERROR", "disk full"),
        _doc(base, "web", "INFO", "ok"),
    ]
    masked = [enrich(d) for d in docs]
    ops = rollup_updates(docs, masked, retention=timedelta(days=1))
    counts, tpl = ops.counts, ops.templates
    by_id = {_spec(op, "q")["_id"]: _spec(op) for op in counts}
    hour = int(base.timestamp() * 1000)
    api = by_id[f"{hour}|api|ERROR"]
    assert api["$inc"] == {"n": 3, "m.0": 1, "m.1": 2, "q.0": 3}
    assert api["$max"] == {"last": base + timedelta(seconds=75)}
    assert api["$setOnInsert"]["expire_at"] == base + timedelta(days=1)
    assert by_id[f"{hour + 3_600_000}|api|ERROR"]["$inc"] == {"n": 1, "m.0": 1, "q.0": 1}
    assert by_id[f"{hour}|web|INFO"]["$inc"] == {"n": 1, "m.0": 1, "q.0": 1}
    assert len(counts) == 3
    timeouts = [
        _spec(op) for op in tpl if _spec(op)["$setOnInsert"]["template"] == "timeout after <n> ms"
    ]
    assert len(timeouts) == 1
    assert timeouts[0]["$inc"] == {"n": 2, "h.3": 2}
    assert timeouts[0]["$max"] == {
        "last": base + timedelta(seconds=70),
        "l.3": base + timedelta(seconds=70),
    }
    # One template document per day: "disk full" at 03:01 and 04:00 shares one.
    disk_full = [_spec(op) for op in tpl if _spec(op)["$setOnInsert"]["template"] == "disk full"]
    assert len(disk_full) == 1
    assert disk_full[0]["$inc"] == {"n": 2, "h.3": 1, "h.4": 1}
    assert disk_full[0]["$max"]["l.4"] == disk_full[0]["$max"]["last"] == base + timedelta(hours=1)
    assert len(tpl) == 3
    assert docs[0]["th"] == docs[1]["th"] != docs[2]["th"]
    # One dictionary entry per template, with its words and when it was first and last seen.
    entries = {_spec(op, "q")["_id"]: _spec(op) for op in ops.dictionary}
    assert len(entries) == 3
    timeout = entries[docs[0]["th"]]
    assert timeout["$setOnInsert"]["words"] == ["timeout", "after", "n", "ms"]
    assert timeout["$min"] == {"first": base + timedelta(seconds=5)}
    assert timeout["$max"]["last"] == base + timedelta(seconds=70)
    assert entries[docs[2]["th"]]["$max"]["last"] == base + timedelta(hours=1)


def test_one_daily_upsert_per_day_service_and_level_with_hour_and_half_hour_counts() -> None:
    day = datetime(2026, 1, 2, tzinfo=UTC)
    docs = [
        _doc(day + timedelta(hours=3, minutes=5), "api", "ERROR", "a"),
        _doc(day + timedelta(hours=3, minutes=20), "api", "ERROR", "b"),
        _doc(day + timedelta(hours=23, minutes=59, seconds=59), "api", "ERROR", "c"),
        _doc(day + timedelta(days=1), "api", "ERROR", "d"),  # the next day's first second
        _doc(day, "web", "INFO", "e"),
    ]
    ops = rollup_updates(docs, [enrich(d) for d in docs], retention=timedelta(days=30))
    by_id = {_spec(op, "q")["_id"]: _spec(op) for op in ops.daily}
    ms = int(day.timestamp() * 1000)
    api = by_id[f"{ms}|api|ERROR"]
    assert api["$inc"] == {"n": 3, "h.3": 2, "h.23": 1, "hh.6": 2, "hh.47": 1}
    assert api["$max"] == {"last": day + timedelta(hours=23, minutes=59, seconds=59)}
    assert api["$setOnInsert"] == {
        "t": day,
        "service": "api",
        "level": "ERROR",
        "expire_at": day + timedelta(days=30),
    }
    assert by_id[f"{ms + 86_400_000}|api|ERROR"]["$inc"] == {"n": 1, "h.0": 1, "hh.0": 1}
    assert by_id[f"{ms}|web|INFO"]["$inc"] == {"n": 1, "h.0": 1, "hh.0": 1}
    assert len(ops.daily) == 3


def _summed(ops: list[dict[str, Any]], key: Any) -> dict[Any, dict[str, int]]:
    """Each upsert's `$inc`, added up per `key(its $setOnInsert, its _id)`."""
    sums: dict[Any, dict[str, int]] = {}
    for op in ops:
        spec = _spec(op)
        into = sums.setdefault(key(spec["$setOnInsert"], _spec(op, "q")["_id"]), {})
        for field, n in spec["$inc"].items():
            into[field] = into.get(field, 0) + n
    return sums


_EVENTS = st.lists(
    st.tuples(
        st.integers(0, 3 * 86_400 - 1),  # second of a three-day span
        st.sampled_from(["api", "web", "db", "queue"]),
        st.sampled_from(["DEBUG", "INFO", "ERROR", "CRITICAL"]),
    ),
    max_size=60,
)


@given(_EVENTS, st.fixed_dictionaries({s: st.integers(0, 5) for s in ("api", "web", "db")}))
def test_totals_are_the_counts_summed_over_services_or_over_levels(
    events: list[tuple[int, str, str]], shards: dict[str, int]
) -> None:
    day = datetime(2026, 1, 2, tzinfo=UTC)
    docs = [
        _doc(day + timedelta(seconds=s), service, level, str(i))
        for i, (s, service, level) in enumerate(events)
    ]
    ops = rollup_updates(
        docs, [enrich(d) for d in docs], retention=timedelta(days=30), shards=shards
    )
    for counts, totals in ((ops.counts, ops.totals), (ops.daily, ops.daily_totals)):
        # Per level over all services (the partitions' shards added up), per service over
        # all levels.
        for summed_over, kept in (("service", "level"), ("level", "service")):
            want = _summed(counts, lambda s, _id: (s["t"], s[kept]))  # noqa: B023
            kind = [op for op in totals if _spec(op)["$setOnInsert"][summed_over] == "*"]
            assert _summed(kind, lambda s, _id: (s["t"], s[kept])) == want  # noqa: B023
        # Per service over the error levels.
        errors = [
            op for op in counts if _spec(op)["$setOnInsert"]["level"] in ("ERROR", "CRITICAL")
        ]
        kind = [op for op in totals if _spec(op)["$setOnInsert"]["level"] == "!"]
        by_service = lambda s, _id: (s["t"], s["service"])  # noqa: E731
        assert _summed(kind, by_service) == _summed(errors, by_service)
        for op in totals:
            insert, doc_id = _spec(op)["$setOnInsert"], _spec(op, "q")["_id"]
            if insert["service"] == "*":
                # One per-level total per partition: the writer of that partition owns it.
                services = {d["service"] for d in docs if d["level"] == insert["level"]}
                assert doc_id.rsplit("|", 1)[1] in {f"p{shards.get(s, 0)}" for s in services}
    assert len(ops.totals) <= len(ops.counts) * 3


def _every_mask_in_turn(message: str) -> str:
    text = message[:800]
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return text


@given(
    st.text(max_size=200)
    | st.text(alphabet="0123456789abcdefABCDEFxX-_ .:/٣３²", max_size=120)
    | st.uuids().map(lambda u: f"req {u} failed")
)
def test_masking_skips_passes_without_changing_the_text(message: str) -> None:
    """The shortcuts (no hyphen: no UUID pass; no digit: no other pass) change nothing."""
    assert masked_text(message) == _every_mask_in_turn(message)


@given(
    st.text(max_size=200)
    | st.text(alphabet="0123456789abcdefABCDEFxX-_ .:/٣３²é", max_size=120)
    | st.uuids().map(lambda u: f"req {u} failed after {u.int % 1000} ms")
)
@example("bad pointer 0x1f at 0xdeadbeef, 9x1f")  # 0 is the one digit with a part of its own
@example("user 9b2f4c1e-0d3a-4f5b-8c6d-7e8f9a0b1c2d took 31.5 ms, v2 \u0663\u0663 \uff13")
def test_messages_that_differ_only_in_digits_one_to_nine_share_the_masked_text(
    message: str,
) -> None:
    """The shortcut `enrich` takes: the masked text of a message's shape is its own."""
    shape = message.translate(str.maketrans("23456789", "11111111"))
    assert masked_text(shape) == masked_text(message)
    document: dict[str, Any] = {"message": message}
    assert enrich(document) == masked_text(message)
    assert document["th"] == template_hash(masked_text(message))
    again: dict[str, Any] = {"message": message}  # now from the remembered shapes
    assert enrich(again) == masked_text(message)
    assert again["th"] == document["th"]


def test_remembered_shapes_are_bounded() -> None:
    from logriver_writer import rollups

    for n in range(rollups._SHAPES_KEPT + 10):
        enrich({"message": f"user u{'x' * (n % 7)}{chr(0x4E00 + n)} gone"})
    assert len(rollups._masked_shapes) <= rollups._SHAPES_KEPT
    assert enrich({"message": "took 31 ms"}) == "took <n> ms"
