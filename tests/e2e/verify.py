"""Checks on data: every acknowledged event is queryable exactly once, aggregations match.

Everything goes through the query API (port 8001) as a user would see it. It
reads from secondaries and caches aggregations for 10 s, so each check polls
until the answer is complete rather than expecting it at once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.e2e.traffic import HEADERS, Ledger
from tests.stack import eventually

QUERY = "http://127.0.0.1:8001"
PAGE = 1000


@dataclass(frozen=True)
class Window:
    """The run's time range, padded: the query service's ranges are ``[since, until)``."""

    since: datetime
    until: datetime

    @classmethod
    def around(cls, start: datetime, end: datetime) -> Window:
        return cls(start - timedelta(minutes=2), end + timedelta(minutes=2))

    def params(self) -> list[tuple[str, str]]:
        return [("since", _iso(self.since)), ("until", _iso(self.until))]


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Listing:
    ids: Counter[str]
    pages: int


async def list_all(http: httpx.AsyncClient, services: list[str], window: Window) -> Listing:
    """Page through every event of ``services`` with the cursor (oldest first)."""
    base = [("service", s) for s in services] + window.params()
    base += [("limit", str(PAGE)), ("order", "asc")]
    ids: Counter[str] = Counter()
    cursor: str | None = None
    pages = 0
    while True:
        params = base + ([("cursor", cursor)] if cursor else [])
        resp = await http.get("/v1/logs", params=tuple(params))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages += 1
        ids.update(event["id"] for event in body["events"])
        cursor = body["next_cursor"]
        if cursor is None:
            return Listing(ids, pages)


async def assert_stored_exactly_once(ledger: Ledger, window: Window, *, within: float) -> Listing:
    """Poll (secondaries lag) until every acknowledged id is listed; then nothing extra,
    nothing twice."""
    services = sorted(ledger.services())
    expected = set(ledger.acked)
    async with httpx.AsyncClient(base_url=QUERY, headers=HEADERS, timeout=30) as http:

        async def complete() -> Listing | None:
            listing = await list_all(http, services, window)
            return listing if expected <= set(listing.ids) else None

        try:
            listing = await eventually(complete, within=within, interval=2, what="all stored")
        except AssertionError:
            last = await list_all(http, services, window)
            missing = expected - set(last.ids)
            raise AssertionError(
                f"{len(missing)} of {len(expected)} acknowledged events never became "
                f"queryable, e.g. {sorted(missing)[:5]}"
            ) from None
    # Batches abandoned when the run ended may have been published before the client gave up.
    extra = set(listing.ids) - expected - ledger.unacked
    repeated = {event_id: n for event_id, n in listing.ids.items() if n > 1}
    assert not extra, f"events nobody acknowledged: {sorted(extra)[:5]}"
    assert not repeated, f"events listed more than once: {list(repeated.items())[:5]}"
    assert len(expected) <= sum(listing.ids.values()) <= len(expected) + len(ledger.unacked)
    return listing


async def _get(http: httpx.AsyncClient, path: str, params: list[tuple[str, str]]) -> Any:
    resp = await http.get(path, params=tuple(params))
    assert resp.status_code == 200, resp.text
    return resp.json()


async def assert_aggregations_match(ledger: Ledger, window: Window, *, within: float) -> None:
    """/v1/stats/services, /v1/stats/errors and the histogram agree with the ledger."""
    counts = ledger.counts()
    services = sorted(counts)
    params = [("service", s) for s in services] + window.params()
    want_services = {s: {"count": n, "errors": e} for s, (n, e) in counts.items()}
    want_errors = {s: e for s, (_, e) in counts.items() if e}
    want_levels = dict(ledger.levels())
    mismatch: dict[str, Any] = {}

    async with httpx.AsyncClient(base_url=QUERY, headers=HEADERS, timeout=30) as http:

        async def agree() -> bool:
            stats = await _get(http, "/v1/stats/services", params)
            got_services = {
                row["service"]: {"count": row["count"], "errors": row["errors"]}
                for row in stats["services"]
            }
            errors = await _get(http, "/v1/stats/errors", params)
            got_errors = {row["service"]: row["errors"] for row in errors["services"]}
            histogram = await _get(
                http, "/v1/stats/histogram", [*params, ("group_by", "level"), ("bucket", "auto")]
            )
            got_levels: Counter[str] = Counter()
            for bucket in histogram["buckets"]:
                got_levels.update(bucket["counts"])
            mismatch.clear()
            if got_services != want_services:
                mismatch["services"] = _diff(want_services, got_services)
            if got_errors != want_errors or errors["total_errors"] != sum(want_errors.values()):
                mismatch["errors"] = _diff(want_errors, got_errors)
            if dict(got_levels) != want_levels or histogram["total"] != len(ledger.acked):
                mismatch["histogram"] = {"want": want_levels, "got": dict(got_levels)}
            return not mismatch

        try:
            # The cache keeps an answer 10 s; a stale one is replaced within the poll.
            await eventually(agree, within=within, interval=2, what="aggregations")
        except AssertionError:
            raise AssertionError(f"aggregations disagree with the ledger: {mismatch}") from None


def _diff(want: dict[str, Any], got: dict[str, Any]) -> dict[str, Any]:
    keys = set(want) | set(got)
    return {
        k: {"want": want.get(k), "got": got.get(k)}
        for k in sorted(keys)
        if want.get(k) != got.get(k)
    }
