"""Rollup increments, message templates and word tokens: the writer's pure per-batch work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import UpdateOne

from logriver_common.indexes import tokens_of
from logriver_writer.rollups import enrich, rollup_updates, template_of


def test_templates_mask_numbers_ids_hex_and_uuids() -> None:
    assert template_of("timeout after 31 ms") == template_of("timeout after 47 ms")
    assert template_of("timeout after 31 ms") == "timeout after <n> ms"
    assert template_of("user 9b2f4c1e-0d3a-4f5b-8c6d-7e8f9a0b1c2d not found") == (
        "user <uuid> not found"
    )
    assert template_of("bad pointer 0xdeadbeef at deadbeef12") == "bad pointer <hex> at <hex>"
    assert template_of("request req-8f3k2 failed for user_1234") == ("request <id> failed for <id>")
    assert template_of("x" * 10_000) == "x" * 200  # bounded


def test_tokens_are_distinct_lowercase_words_and_bounded() -> None:
    assert tokens_of("Timeout after 31 ms; TIMEOUT again") == [
        "timeout",
        "after",
        "31",
        "ms",
        "again",
    ]
    assert len(tokens_of(" ".join(f"w{i}" for i in range(1000)))) == 64
    assert tokens_of("a" * 100) == []  # longer than a word can be in the index


def _doc(ts: datetime, service: str, level: str, message: str) -> dict[str, Any]:
    return {
        "_id": f"{ts}{service}{level}{message}",
        "timestamp": ts,
        "service": service,
        "level": level,
        "message": message,
    }


def _spec(op: UpdateOne, part: str = "_doc") -> Any:
    return getattr(op, part)


def test_one_upsert_per_bucket_with_minute_counts() -> None:
    base = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
    docs = [
        _doc(base + timedelta(seconds=5), "api", "ERROR", "timeout after 31 ms"),
        _doc(base + timedelta(seconds=70), "api", "ERROR", "timeout after 47 ms"),
        _doc(base + timedelta(seconds=75), "api", "ERROR", "disk full"),
        _doc(base + timedelta(hours=1), "api", "ERROR", "disk full"),
        _doc(base, "web", "INFO", "ok"),
    ]
    templates = [enrich(d) for d in docs]
    counts, tpl = rollup_updates(docs, templates, retention=timedelta(days=1))
    by_id = {_spec(op, "_filter")["_id"]: _spec(op) for op in counts}
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
    assert timeouts[0]["$inc"] == {"n": 2}
    assert len(tpl) == 4
    assert docs[0]["th"] == docs[1]["th"] != docs[2]["th"]
    assert "timeout" in docs[0]["tokens"]
