"""End-to-end scenarios over the running stack (issue 10), asserting on data, not timing.

Runs are isolated by data: unique service names, a rule that selects only this
run's service, a private webhook receiver. Each test writes what it observed to
``test-output/e2e-<scenario>.json``.

``LOGRIVER_E2E_SECONDS`` (default 90, at least 45) is scenario 1's traffic duration;
``LOGRIVER_E2E_RATE`` (default 400) the events/s of both paths together.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import faults
from tests.e2e.faults import DEPENDENTS, ReadinessRecorder
from tests.e2e.receivers import AlertSetup, Notifications
from tests.e2e.tail_client import TailClient
from tests.e2e.traffic import (
    HEADERS,
    EventFactory,
    GatewayClient,
    Ledger,
    Traffic,
    service_names,
)
from tests.e2e.verify import (
    QUERY,
    Window,
    assert_aggregations_match,
    assert_stored_exactly_once,
)
from tests.stack import eventually, wait_for_jaeger

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("restored")]

DURATION = max(45.0, float(os.environ.get("LOGRIVER_E2E_SECONDS", "90")))
RATE = float(os.environ.get("LOGRIVER_E2E_RATE", "400"))
N_SERVICES = 50
TAILED = 10  # the live-tail client follows the first ten services
RECONNECTS = 5
BURST = 300  # ERROR events for one service, against ~8 events/s of background
ALERT_WINDOW_S = 15
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


def report(name: str, observed: dict[str, Any]) -> None:
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / f"e2e-{name}.json").write_text(json.dumps(observed, indent=2, default=str))


async def at(t0: float, offset: float) -> None:
    """Pace the scenario's timeline (traffic pacing, not a readiness wait)."""
    delay = t0 + offset - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def assert_tail_exact(tail: TailClient, ledger: Ledger, expected: set[str]) -> None:
    assert not tail.problems, tail.problems
    assert not tail.missing(expected)
    unexpected = set(tail.seen) - expected - ledger.unacked
    assert not unexpected, f"tail delivered events it should not have: {sorted(unexpected)[:5]}"
    # A record can be on the topic twice only if a producer retried after an ambiguous
    # failure; storage absorbs that, the tail (which delivers the topic) cannot.
    repeated = tail.repeated()
    assert set(repeated) <= ledger.ambiguous, {
        k: v for k, v in repeated.items() if k not in ledger.ambiguous
    }


async def tail_caught_up(tail: TailClient, expected: set[str]) -> None:
    async def caught_up() -> bool:
        return not tail.missing(expected)

    try:
        await eventually(caught_up, within=90, interval=0.5, what="live tail complete")
    except AssertionError:
        missing = tail.missing(expected)
        raise AssertionError(
            f"live tail missed {len(missing)} of {len(expected)}: {sorted(missing)[:5]}"
        ) from None


# -- scenario 1 -----------------------------------------------------------------------------


@pytest.mark.timeout(DURATION + 420)
async def test_mixed_traffic_is_stored_aggregated_tailed_and_alerted_exactly_once(
    unique: str,
) -> None:
    services = service_names(unique, N_SERVICES)
    burst_service = services[0]
    ledger = Ledger()
    factory = EventFactory(unique, services)
    notifications = await Notifications.start()
    alert = await AlertSetup.create(
        f"e2e-{unique}",
        notifications.url,
        {
            "services": [burst_service],
            "condition": {"type": "error_rate", "level": "ERROR", "threshold": 0.5},
            "window_seconds": ALERT_WINDOW_S,
            "min_events": 20,
            "for_seconds": 0,
            "reminder_seconds": None,
            "severity": "critical",
        },
    )
    tail = TailClient(services[:TAILED])
    tail.start()
    try:
        await asyncio.wait_for(tail.opened.wait(), timeout=30)
        started = datetime.now(UTC)
        async with Traffic(factory, ledger, rate=RATE) as traffic:
            runner = asyncio.create_task(traffic.run())
            t0 = time.monotonic()
            # The rule is loaded within rules_refresh_s (5 s); the burst must leave its
            # window (15 s + 2 s lateness) well before the traffic ends.
            timeline: list[tuple[float, Callable[[], Awaitable[None]]]] = [
                (DURATION * (i + 1) / (RECONNECTS + 1), tail.reconnect) for i in range(RECONNECTS)
            ]
            burst_at = max(12.0, DURATION * 0.2)
            timeline.append((burst_at, lambda: send_burst(traffic.gateway, factory, burst_service)))
            for offset, action in sorted(timeline, key=lambda item: item[0]):
                await at(t0, offset)
                await action()
            await at(t0, DURATION)
            traffic.stop()
            await runner
        ended = datetime.now(UTC)
        window = Window.around(started, ended)

        expected_tail = ledger.for_services(set(services[:TAILED]))
        await tail_caught_up(tail, expected_tail)
        listing = await assert_stored_exactly_once(ledger, window, within=180)
        await assert_aggregations_match(ledger, window, within=60)

        async def fired_and_resolved() -> bool:
            return notifications.kinds(burst_service) == ["firing", "resolved"]

        await eventually(fired_and_resolved, within=90, interval=0.5, what="firing + resolved")
        assert_tail_exact(tail, ledger, expected_tail)
        assert tail.connections == RECONNECTS + 1
        assert tail.breaks == 0
        # Nothing after the resolution: still exactly one of each.
        assert notifications.kinds(burst_service) == ["firing", "resolved"]
        report(
            "scenario1",
            {
                "seconds": DURATION,
                "rate": RATE,
                "acknowledged": len(ledger.acked),
                "by_path": _by_path(ledger),
                "retried_batches": dict(ledger.retries),
                "ambiguous_ids": len(ledger.ambiguous),
                "listed": sum(listing.ids.values()),
                "pages": listing.pages,
                "tail_expected": len(expected_tail),
                "tail_seen": sum(tail.seen.values()),
                "tail_repeats": len(tail.repeated()),
                "tail_connections": tail.connections,
                "notifications": notifications.kinds(burst_service),
                "alert_values": [n.get("value") for n in notifications.of(burst_service)],
            },
        )
    finally:
        await tail.stop()
        await alert.delete()
        await notifications.close()


async def send_burst(gateway: GatewayClient, factory: EventFactory, service: str) -> None:
    for _ in range(3):
        events = [factory.make("http", service=service, level="ERROR") for _ in range(BURST // 3)]
        await gateway.send(events)


def _by_path(ledger: Ledger) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sent in ledger.acked.values():
        counts[sent.via] = counts.get(sent.via, 0) + 1
    return counts


# -- scenario 2 -----------------------------------------------------------------------------


@pytest.mark.timeout(900)
async def test_faults_lose_nothing_duplicate_nothing_and_readiness_shows_them(
    unique: str,
) -> None:
    services = service_names(unique, N_SERVICES)
    ledger = Ledger()
    factory = EventFactory(unique, services)
    recorder = ReadinessRecorder()
    tail = TailClient(services[:TAILED])
    observed: dict[str, Any] = {}
    pids_before = {name: faults.pid_of(name) for name in faults.SERVICE_PORTS}
    recorder.start()
    tail.start()
    try:
        await asyncio.wait_for(tail.opened.wait(), timeout=30)
        started = datetime.now(UTC)
        async with Traffic(factory, ledger, rate=RATE / 2, senders=6) as traffic:
            runner = asyncio.create_task(traffic.run())

            async def steady() -> str:
                """Some acknowledged traffic after a fault, so the next one hits a live
                pipeline; says how traffic fared, rather than stopping the sequence."""
                target = len(ledger.acked) + int(RATE * 3)
                retries = dict(ledger.retries)

                async def flowing() -> bool:
                    return len(ledger.acked) >= target

                try:
                    await eventually(flowing, within=60, what="acknowledged traffic")
                except AssertionError:
                    new = {k: v - retries.get(k, 0) for k, v in ledger.retries.items()}
                    return f"no acknowledged traffic for 60 s; retried batches: {new}"
                return "flowing"

            await steady()
            observed["writer kill -9"] = await kill_and_restart("writer", recorder, steady)
            observed["stream kill -9"] = await kill_and_restart("stream", recorder, steady)
            reconnects_before = tail.connections
            observed["mongodb step-down"] = await step_down(recorder, steady)
            # Kafka last: a broker restart has the most lasting effects (see docs/e2e.md).
            for part in ("redis", "postgres", "kafka"):
                observed[f"{part} restart"] = await restart_part(part, recorder, steady)
            traffic.stop()
            await runner
            observed["abandoned_batches"] = traffic.abandoned
            observed["unacked_ids"] = len(ledger.unacked)
        ended = datetime.now(UTC)
        window = Window.around(started, ended)

        expected_tail = ledger.for_services(set(services[:TAILED]))
        await tail_caught_up(tail, expected_tail)
        listing = await assert_stored_exactly_once(ledger, window, within=180)
        assert_tail_exact(tail, ledger, expected_tail)

        # Recovery without manual action: only what the test killed has a new PID.
        pids_after = {name: faults.pid_of(name) for name in faults.SERVICE_PORTS}
        for name in ("ingest", "query", "alerter"):
            assert pids_after[name] == pids_before[name], f"{name} was restarted"
        observed.update(
            acknowledged=len(ledger.acked),
            by_path=_by_path(ledger),
            retried_batches=dict(ledger.retries),
            ambiguous_ids=len(ledger.ambiguous),
            listed=sum(listing.ids.values()),
            tail_expected=len(expected_tail),
            tail_repeats=len(tail.repeated()),
            tail_connections=tail.connections,
            tail_connections_after_stream_kill=reconnects_before,
            tail_failed_connects=tail.failed_connects,
        )
        report("scenario2", observed)
        stuck = {
            fault: o["traffic"] for fault, o in faults_seen(observed) if o["traffic"] != "flowing"
        }
        assert not stuck, f"traffic did not recover without manual action: {stuck}"
        assert observed["abandoned_batches"] == 0
        # Readiness had to show the outages the test controlled (stop, observe, start).
        for part in ("kafka", "redis", "postgres"):
            seen = observed[f"{part} restart"]
            missed = [s for s, ok in seen["outage_observed"].items() if not ok]
            assert not missed, f"{part} outage not shown by /readyz of {missed}: {seen}"
        for name in ("writer", "stream"):
            assert observed[f"{name} kill -9"]["outage_observed"], observed[f"{name} kill -9"]
        assert tail.connections > 1, "the tail client never resumed after the stream was killed"
    finally:
        report("scenario2", observed)
        await tail.stop()
        await recorder.stop()


def faults_seen(observed: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(k, v) for k, v in observed.items() if isinstance(v, dict) and "traffic" in v]


async def kill_and_restart(
    name: str, recorder: ReadinessRecorder, steady: Callable[[], Awaitable[str]]
) -> dict[str, Any]:
    mark = recorder.mark()
    old = await faults.kill_service(name)

    async def unready() -> bool:
        return any(t.status != 200 for t in recorder.since(name, mark) if t.at >= mark)

    await eventually(unready, within=10, what=f"{name} unready after kill -9")
    await faults.start_service(name)  # the only manual action: restart what was killed
    await faults.all_ready()
    return {
        "traffic": await steady(),
        "old_pid": old,
        "new_pid": faults.pid_of(name),
        "readiness": recorder.summary(name, mark),
        "outage_observed": recorder.saw_down_and_up(name, mark),
    }


async def step_down(
    recorder: ReadinessRecorder, steady: Callable[[], Awaitable[str]]
) -> dict[str, Any]:
    mark = recorder.mark()
    old = await faults.step_down_primary()
    new = await eventually(lambda: faults.new_primary(old), within=60, what="a new primary")
    await faults.all_ready()
    traffic = await steady()
    # Elections take about 2-4 s here; a 0.25 s poll may or may not catch a service unready,
    # so this is recorded, not required.
    return {
        "traffic": traffic,
        "old_primary": old,
        "new_primary": new,
        "readiness": {s: recorder.summary(s, mark) for s in DEPENDENTS["mongodb"]},
        "outage_observed": {
            s: recorder.saw_outage(s, "mongodb", mark) for s in DEPENDENTS["mongodb"]
        },
    }


async def restart_part(
    part: str, recorder: ReadinessRecorder, steady: Callable[[], Awaitable[str]]
) -> dict[str, Any]:
    dependents = DEPENDENTS[part]
    mark = recorder.mark()
    stopped = time.monotonic()
    await faults.stop_part(part)

    async def all_report_it() -> bool:
        return all(
            any(t.status == 503 and part in t.down for t in recorder.since(s, mark))
            for s in dependents
        )

    try:
        await eventually(all_report_it, within=60, what=f"/readyz showing {part} down")
    finally:
        await faults.start_part(part)
    outage_s = time.monotonic() - stopped
    await faults.all_ready(within=120)
    return {
        "traffic": await steady(),
        "outage_s": round(outage_s, 1),
        "readiness": {s: recorder.summary(s, mark) for s in dependents},
        "outage_observed": {s: recorder.saw_outage(s, part, mark) for s in dependents},
    }


# -- scenario 3 -----------------------------------------------------------------------------


async def test_one_traced_request_is_one_trace_from_gateway_to_writer_and_alerter(
    unique: str,
) -> None:
    trace_id = secrets.token_hex(16)
    client_span = secrets.token_hex(8)
    service = f"e2e-{unique}-traced"
    notifications = await Notifications.start()
    alert = await AlertSetup.create(
        f"e2e-{unique}-trace",
        notifications.url,
        {
            "services": [service],
            "condition": {"type": "count", "level": "ERROR", "threshold": 1},
            # Windows count every service's events before a rule selects it, so an event
            # that arrives before the alerter loads this rule (every 5 s) still fires it.
            "window_seconds": 30,
            "min_events": 1,
            "for_seconds": 0,
            "severity": "warning",
        },
    )
    await wait_for_jaeger()  # it may still be building (devstack/jaeger.py)
    ledger = Ledger()
    gateway = GatewayClient(ledger)
    try:
        event = {
            "id": f"e2e-{unique}-traced-1",
            "service": service,
            "level": "ERROR",
            "message": "traced request failed",
            "trace_id": trace_id,
            "span_id": client_span,
        }
        await gateway.send([event], headers={"traceparent": f"00-{trace_id}-{client_span}-01"})

        async with httpx.AsyncClient(base_url=QUERY, headers=HEADERS, timeout=10) as http:

            async def trace_found() -> dict[str, Any] | None:
                resp = await http.get(f"/v1/traces/{trace_id}")
                body: dict[str, Any] = resp.json()
                return body if resp.status_code == 200 and body["count"] == 1 else None

            found = await eventually(trace_found, within=60, what="the trace's log")
        link = found["jaeger_url"]
        assert link.endswith(f"/trace/{trace_id}"), link
        assert found["events"][0]["id"] == event["id"]

        async def fired() -> bool:
            return "firing" in notifications.kinds(service)

        await eventually(fired, within=60, what="the traced event's alert")
        assert notifications.of(service)[0]["sample_trace_id"] == trace_id

        api = link.replace("/trace/", "/api/traces/")
        wanted = {
            ("logriver-ingest", None),
            ("logriver-writer", "logriver.writer.store"),
            ("logriver-alerter", "logriver.alerter.notify"),
        }
        async with httpx.AsyncClient(timeout=10) as jaeger:

            async def whole_trace() -> list[dict[str, Any]] | None:
                resp = await jaeger.get(api)
                if resp.status_code != 200:
                    return None
                traces = resp.json().get("data") or []
                if len(traces) != 1:
                    return None
                spans = _spans_by_service(traces[0])
                have = {
                    (svc, op)
                    for svc, ops in spans.items()
                    for op in [None, *(s["operationName"] for s in ops)]
                }
                return traces if wanted <= have else None

            traces = await eventually(whole_trace, within=90, interval=1, what="one whole trace")
        spans = _spans_by_service(traces[0])
        ids = {s["spanID"]: s for ss in spans.values() for s in ss}
        assert {s["traceID"] for s in ids.values()} == {trace_id}
        # The writer's hop is a child of the gateway span that published the record.
        (store,) = [s for s in spans["logriver-writer"] if s["operationName"].endswith("store")]
        parent = _parent(store)
        assert parent in ids, "the writer span's parent is not in the trace"
        assert parent in {s["spanID"] for s in spans["logriver-ingest"]}
        # The alerter's span is a child of the event's own span (the client's).
        (notify,) = [
            s for s in spans["logriver-alerter"] if s["operationName"] == "logriver.alerter.notify"
        ]
        assert _parent(notify) == client_span
        report(
            "scenario3",
            {
                "trace_id": trace_id,
                "jaeger_url": link,
                "spans": {svc: sorted(s["operationName"] for s in ss) for svc, ss in spans.items()},
            },
        )
    finally:
        await gateway.close()
        await alert.delete()
        await notifications.close()


def _spans_by_service(trace: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    processes = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for span in trace["spans"]:
        grouped.setdefault(processes[span["processID"]], []).append(span)
    return grouped


def _parent(span: dict[str, Any]) -> str | None:
    for ref in span.get("references", []):
        if ref["refType"] == "CHILD_OF":
            return str(ref["spanID"])
    return None
