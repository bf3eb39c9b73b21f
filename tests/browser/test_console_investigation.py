"""The console as an investigation tool, in a real browser against real services.

The URL holds the search (back/forward, a pasted link), the histogram gets every filter
and has axes, counts and a tooltip, times follow one UTC/local switch, values filter or
exclude with a click, a context view shows an event's neighbours, the overview shows
rates, error ratios, trends and error templates, and the alerts page shows incidents
and each delivery attempt. Screenshots go to docs/img/ (shown in docs/console.md).
"""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import orjson
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from logriver_common.documents import event_to_document
from logriver_common.event import Level, LogEvent
from tests.browser.loading import store
from tests.conftest import StartService, Topics

pytestmark = [pytest.mark.integration]
IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
ZONE = "Asia/Kolkata"  # +05:30: local and UTC differ, and not by whole hours
LEVELS = list(Level)
EVENTS = 240


def make_events() -> list[LogEvent]:
    """240 events over the last 40 minutes: two services, two hosts, two envs, all levels."""
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    events = []
    for i in range(EVENTS):
        level = LEVELS[i % 5]
        failing = level in (Level.ERROR, Level.CRITICAL)
        message = (
            f"payment {uuid.UUID(int=i)} failed after {i % 7} retries"
            if failing
            else (f"request {i} took {10 + i % 90} ms")
        )
        events.append(
            LogEvent(
                timestamp=newest - timedelta(seconds=10 * i),
                service="api" if i % 3 else "worker",
                level=level,
                message=message,
                host=f"h{i % 2 + 1}",
                env="prod" if i % 4 else "staging",
                trace_id=f"{i + 1:032x}" if i % 12 == 0 else None,
                metadata={"order_id": f"A-{i % 5}", "attempt": i % 3},
            )
        )
    return events


async def load(database: str, events: list[LogEvent]) -> None:
    await store(database, [event_to_document(event, None) for event in events])


def env_for(database: str, **extra: str) -> dict[str, str]:
    return {
        "LOGRIVER_MONGO_DATABASE": database,
        "LOGRIVER_OTEL_ENABLED": "false",
        # Aggregations are cached in Redis by their filters: keep other tests' answers out.
        "LOGRIVER_REDIS_KEY_PREFIX": f"{database}:",
        **extra,
    }


async def new_page(browser: Browser) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id=ZONE)
    return context, await context.new_page()


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


async def end_of_results(page: Page) -> None:
    await expect(page.locator("#status")).to_contain_text("(end)")


async def shown_services(page: Page) -> set[str]:
    return set(await page.locator("#results tr.event td:nth-child(3)").all_inner_texts())


async def test_search_url_histogram_time_zone_filters_and_context(
    browser: Browser, service_process: StartService, mongo_database: str
) -> None:
    events = make_events()
    await load(mongo_database, events)
    query = service_process("query", env_for(mongo_database))
    context, page = await new_page(browser)
    histogram_calls: list[str] = []
    page.on(
        "request",
        lambda r: histogram_calls.append(r.url) if "/v1/stats/histogram" in r.url else None,
    )

    # A link holds the search: the form is filled from it and the search runs.
    await page.goto(f"{query.url}/?service=api&level=%3E%3DWARNING&since=1h&meta.attempt=1")
    await end_of_results(page)
    assert await page.input_value("input[name=service]") == "api"
    assert await page.input_value("select[name=level]") == ">=WARNING"
    assert await page.input_value("input[name=meta]") == "attempt=1"
    expected = [
        e
        for e in events
        if e.service == "api" and e.level in LEVELS[2:] and (e.metadata or {})["attempt"] == 1
    ]
    await expect(page.locator("#results tr.event")).to_have_count(len(expected))
    await expect(page.locator("#histogram")).to_have_attribute("data-total", str(len(expected)))

    # The histogram: axes, a count over bars, a tooltip in the chosen zone.
    assert await page.locator("#histogram .y-axis text").count() >= 2
    assert await page.locator("#histogram .x-axis text").count() >= 2
    counts = await page.locator("#histogram text.count").all_text_contents()
    assert sum(int(c) for c in counts) == len(expected)
    await page.locator("#histogram rect.bar").last.hover()
    tip = page.locator("#hist-tip")
    await expect(tip).to_be_visible()
    await expect(tip).to_contain_text("events")
    await expect(tip).to_contain_text("+05:30")

    # Every filter goes to the stats endpoint, text and trace id included.
    histogram_calls.clear()
    await page.fill("input[name=q]", "retries")
    await page.click("#search")
    await end_of_results(page)
    assert histogram_calls, "no histogram request"
    sent = parse_qs(urlsplit(histogram_calls[0]).query)
    assert sent["q"] == ["retries"]
    assert sent["service"] == ["api"]
    assert sent["meta.attempt"] == ["1"]
    failing = [e for e in expected if "retries" in e.message]
    await expect(page.locator("#results tr.event")).to_have_count(len(failing))
    if await page.locator("#hist-note").inner_text() == "":
        # A server whose histogram takes `q` counts exactly the rows.
        await expect(page.locator("#histogram")).to_have_attribute("data-total", str(len(failing)))

    # Back and forward move between the two searches.
    assert query_of(page)["q"] == ["retries"]
    await page.go_back()
    await expect(page.locator("input[name=q]")).to_have_value("")
    await expect(page.locator("#results tr.event")).to_have_count(len(expected))
    await page.go_forward()
    await expect(page.locator("input[name=q]")).to_have_value("retries")
    await expect(page.locator("#results tr.event")).to_have_count(len(failing))

    # Time zone: local (+05:30) by default, UTC everywhere after the switch.
    first_time = page.locator("#results tr.event td.time").first
    await expect(first_time).to_contain_text("+05:30")
    axis_before = await page.locator("#histogram .x-axis text").first.text_content()
    await page.select_option("#tz", "utc")
    await expect(first_time).to_contain_text("UTC")
    axis_after = await page.locator("#histogram .x-axis text").first.text_content()
    assert axis_before != axis_after
    await page.select_option("#tz", "local")
    await expect(first_time).to_contain_text("+05:30")

    # Click a value to filter on it: host of the first row.
    await page.goto(f"{query.url}/?since=1h")
    await expect(page.locator("#results tr.event")).to_have_count(100)
    await page.locator("#results tr.event").first.click()
    details = page.locator("#results tr.details").first
    await details.locator("button.filter[data-field=host]").click()
    await expect(page.locator("input[name=host]")).to_have_value("h1")
    assert query_of(page)["host"] == ["h1"]
    await page.locator("#sentinel").scroll_into_view_if_needed()
    await expect(page.locator("#status")).to_contain_text(
        f"{sum(e.host == 'h1' for e in events)} events"
    )

    # Exclude: a level and a service (the API gets the complement), then env (rows only).
    await page.locator("#results tr.event").first.click()
    await (
        page.locator("#results tr.details")
        .first.locator("button.exclude[data-field=service]")
        .click()
    )
    await expect(page.locator("#exclusions .chip")).to_have_count(1)
    # The newest event (i = 0) is the worker's.
    assert query_of(page)["not.service"] == ["worker"]
    await end_of_results(page)
    assert await shown_services(page) == {"api"}
    h1_api = [e for e in events if e.host == "h1" and e.service == "api"]
    await expect(page.locator("#histogram")).to_have_attribute("data-total", str(len(h1_api)))
    await page.locator("#results tr.event").first.click()
    details = page.locator("#results tr.details").first
    level = await details.locator("button.exclude[data-field=level]").get_attribute("title")
    await details.locator("button.exclude[data-field=level]").click()
    assert level is not None
    excluded_level = level.split("= ")[1]
    await expect(page.locator("#exclusions .chip")).to_have_count(2)
    await end_of_results(page)
    assert await page.locator(f"#results .level-{excluded_level}").count() == 0
    kept = [e for e in h1_api if e.level.value != excluded_level]
    await expect(page.locator("#results tr.event")).to_have_count(len(kept))
    await page.locator("#results tr.event").first.click()
    await (
        page.locator("#results tr.details").first.locator("button.exclude[data-field=env]").click()
    )
    await expect(page.locator("#exclusions .chip")).to_have_count(3)
    await end_of_results(page)
    excluded_env = query_of(page)["not.env"][0]
    kept = [e for e in kept if e.env != excluded_env]
    await expect(page.locator("#results tr.event")).to_have_count(len(kept))
    await expect(page.locator("#status")).to_contain_text("hidden by exclusions")
    await expect(page.locator("#hist-note")).to_contain_text("exclusions")

    # The same link in a fresh page reproduces the view, exclusions included.
    link = page.url
    ids = await page.locator("#results tr.event").evaluate_all("rs => rs.map(r => r.dataset.id)")
    _, other = await new_page(browser)
    await other.goto(link)
    await end_of_results(other)
    await expect(other.locator("#exclusions .chip")).to_have_count(3)
    assert (
        await other.locator("#results tr.event").evaluate_all("rs => rs.map(r => r.dataset.id)")
        == ids
    )
    await other.close()
    # Removing a chip removes that exclusion.
    await page.locator("#exclusions .chip", has_text="not env").locator("button").click()
    await expect(page.locator("#exclusions .chip")).to_have_count(2)
    assert "not.env" not in query_of(page)

    # Context: the events around one event, same service and host, the event marked.
    await page.goto(f"{query.url}/?since=1h&service=api&host=h2")
    await end_of_results(page)
    await expect(page.locator("#results tr.event")).to_have_count(
        sum(e.service == "api" and e.host == "h2" for e in events)
    )
    row = page.locator("#results tr.event").nth(40)
    anchor_id = await row.get_attribute("data-id")
    await row.click()
    await page.locator("#results tr.details:visible button.context").click()
    panel = page.locator("#context")
    await expect(panel).to_be_visible()
    await expect(panel.locator("tr.anchor")).to_have_count(1)
    assert await panel.locator("tr.anchor").get_attribute("data-id") == anchor_id
    await expect(panel.locator("tbody tr")).to_have_count(21)
    services = set(await panel.locator("tbody tr td:nth-child(3)").all_inner_texts())
    assert services == {"api"}
    assert query_of(page)["context"] == [anchor_id]
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(IMG / "console-context.png"))
    # The context is part of the link too.
    await page.reload()
    await expect(page.locator("#context tr.anchor")).to_have_count(1)
    await page.click("#context-close")
    await expect(panel).to_be_hidden()
    assert "context" not in query_of(page)

    # Rows with a trace link to the trace page.
    await page.goto(f"{query.url}/?since=1h&service=worker")
    traced = page.locator("#results tr.event a.trace").first
    await expect(traced).to_be_visible()
    href = await traced.get_attribute("href")
    assert href is not None
    assert href.startswith("trace.html?trace_id=")

    # The picture for the docs: a filtered search with the tooltip open.
    await page.goto(f"{query.url}/?since=1h&level=%3E%3DINFO&not.service=worker")
    await expect(page.locator("#results tr.event").first).to_be_visible()
    await page.locator("#histogram rect.bar").nth(10).hover()
    await expect(page.locator("#hist-tip")).to_be_visible()
    await page.screenshot(path=str(IMG / "console-search.png"))
    await context.close()


async def test_overview_rates_ratios_trends_and_templates(
    browser: Browser, service_process: StartService, mongo_database: str
) -> None:
    events = make_events()
    await load(mongo_database, events)
    query = service_process("query", env_for(mongo_database))
    context, page = await new_page(browser)
    await page.goto(f"{query.url}/overview.html?since=1h")
    rows = page.locator("#services tr.service")
    await expect(rows).to_have_count(2, timeout=20_000)  # a loaded CI box answers slowly
    for service in ("api", "worker"):
        mine = [e for e in events if e.service == service]
        errors = [e for e in mine if e.level in (Level.ERROR, Level.CRITICAL)]
        row = page.locator(f"#services tr[data-service={service}]")
        await expect(row.locator("td").nth(1)).to_have_text(str(len(mine)))
        await expect(row.locator("td").nth(3)).to_have_text(str(len(errors)))
        ratio = f"{len(errors) / len(mine) * 100:.1f}%"
        await expect(row.locator("td.ratio")).to_have_text(ratio)
        rate = float(await row.locator("td.rate").inner_text())
        assert rate == pytest.approx(len(mine) / 60, rel=0.05)
        spark = row.locator("svg.spark")
        await expect(spark).to_have_attribute("data-total", str(len(mine)))
        assert await spark.locator("polyline").count() == 2
    # The error messages differ in their uuid and retry count: one template holds them all.
    templates = page.locator("#templates tr.template")
    await expect(templates).to_have_count(1)
    errors = [e for e in events if e.level in (Level.ERROR, Level.CRITICAL)]
    await expect(templates.first.locator("td").first).to_have_text(str(len(errors)))
    await expect(templates.first).to_contain_text("payment <uuid> failed after <n> retries")
    await expect(templates.first).to_contain_text("api, worker")
    # A template links to the search that finds its events.
    href = await templates.first.locator("a").get_attribute("href")
    assert href is not None
    assert parse_qs(urlsplit(href).query)["q"] == ["failed after"]
    # The range is in the URL.
    await page.select_option("select[name=since]", "15m")
    await expect(page).to_have_url(f"{query.url}/overview.html?since=15m")
    await page.go_back()
    await expect(page.locator("select[name=since]")).to_have_value("1h")
    await expect(rows).to_have_count(2)
    # The older range's answer, if it comes last, does not overwrite the current one.
    await expect(page.locator("#status")).to_contain_text("240 events in 60 min")
    await page.screenshot(path=str(IMG / "console-overview.png"))
    await context.close()


ALERTS = [
    # (state, rule, service, severity, minutes ago pending, fired, resolved)
    ("firing", "checkout errors", "checkout", "critical", 12, 11, None),
    ("resolved", "checkout errors", "checkout", "critical", 180, 178, 150),
    ("resolved", "slow payments", "payments", "warning", 90, None, 80),
]


async def seed_alerts(dsn: str) -> int:
    """Incidents and delivery attempts as the alerter writes them (its own schema)."""
    now = datetime.now(UTC)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    assert pool is not None
    firing_id = 0
    try:
        async with pool.acquire() as conn:
            for state, rule, service, severity, pending, fired, resolved in ALERTS:
                alert_id = await conn.fetchval(
                    """INSERT INTO alerts (rule_id, rule_name, service, severity, state,
                           pending_since, fired_at, resolved_at, resolved_reason, value,
                           threshold, matched, total, window_seconds, peak_value)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0.31, 0.05, 31, 100, 300,
                               0.42)
                       RETURNING id""",
                    f"r-{rule.replace(' ', '-')}",
                    rule,
                    service,
                    severity,
                    state,
                    now - timedelta(minutes=pending),
                    now - timedelta(minutes=fired) if fired is not None else None,
                    now - timedelta(minutes=resolved) if resolved is not None else None,
                    "recovered" if resolved is not None else None,
                )
                if state != "firing":
                    continue
                firing_id = alert_id
                notification = await conn.fetchval(
                    """INSERT INTO alert_notifications (alert_id, channel, kind, payload, state,
                           attempts) VALUES ($1, 'oncall', 'firing', $2, 'delivered', 2)
                       RETURNING id""",
                    alert_id,
                    orjson.dumps({"summary": "checkout errors"}).decode(),
                )
                for attempt, code, outcome, error in (
                    (1, 503, "retry", "HTTP 503 from the receiver"),
                    (2, 200, "delivered", None),
                ):
                    await conn.execute(
                        """INSERT INTO alert_deliveries (notification_id, alert_id, channel,
                               kind, attempt, status_code, outcome, error, duration_ms)
                           VALUES ($1, $2, 'oncall', 'firing', $3, $4, $5, $6, 12.5)""",
                        notification,
                        alert_id,
                        attempt,
                        code,
                        outcome,
                        error,
                    )
    finally:
        await pool.close()
    return firing_id


async def test_alerts_page_shows_incidents_history_and_deliveries(
    browser: Browser,
    service_process: StartService,
    mongo_database: str,
    postgres_dsn: str,
    topics: Topics,
    unique: str,
) -> None:
    alerter = service_process(
        "alerter",
        {
            **topics.env(),
            "LOGRIVER_MONGO_DATABASE": mongo_database,
            "LOGRIVER_POSTGRES_DSN": postgres_dsn,
            "LOGRIVER_OTEL_ENABLED": "false",
            "LOGRIVER_ALERTER_GROUP_ID": f"alerter-{unique}",
        },
    )
    firing_id = await seed_alerts(postgres_dsn)
    query = service_process(
        "query", env_for(mongo_database, LOGRIVER_CONSOLE_ALERTER_URL=alerter.url)
    )
    context, page = await new_page(browser)
    await page.goto(f"{query.url}/alerts.html")
    current = page.locator("#current tr.alert")
    await expect(current).to_have_count(1)
    await expect(current.first).to_contain_text("checkout errors")
    await expect(current.first).to_contain_text("firing")
    await expect(current.first).to_contain_text("0.31 / 0.05")
    await expect(current.first.locator("td.time")).to_contain_text("+05:30")
    history = page.locator("#history tr.alert")
    await expect(history).to_have_count(3)
    await expect(page.locator("#history")).to_contain_text("resolved (recovered)")

    # Each delivery attempt of the firing incident, and the link holds the open incident.
    await current.first.locator("button.show-deliveries").click()
    attempts = page.locator("#deliveries tr.delivery")
    await expect(attempts).to_have_count(2)
    await expect(attempts.nth(0)).to_contain_text("retry")
    await expect(attempts.nth(0)).to_contain_text("503")
    await expect(attempts.nth(0)).to_contain_text("HTTP 503 from the receiver")
    await expect(attempts.nth(1)).to_contain_text("delivered")
    assert query_of(page)["alert"] == [str(firing_id)]
    await page.screenshot(path=str(IMG / "console-alerts.png"), full_page=True)
    await page.reload()
    await expect(page.locator("#deliveries tr.delivery")).to_have_count(2)

    # Filters are in the URL too; the incident's events link to a search over its window.
    await page.fill("input[name=service]", "payments")
    await page.click("#refresh")
    await expect(history).to_have_count(1)
    assert query_of(page)["service"] == ["payments"]
    href = await history.first.locator("a.events").get_attribute("href")
    assert href is not None
    assert parse_qs(urlsplit(href).query)["service"] == ["payments"]

    # A key the alerter refuses: the page says why.
    await page.fill("#api-key", "lr_wrong_key")
    await page.dispatch_event("#api-key", "change")
    await page.click("#refresh")
    await expect(page.locator("#status")).to_contain_text("API key")
    await context.close()


async def test_hostile_links_render_as_text_and_fail_clearly(
    browser: Browser, service_process: StartService, mongo_database: str
) -> None:
    """A crafted link cannot run script: values are text, bad ones are the API's 400."""
    await load(mongo_database, make_events()[:5])
    # No alerter there: the alerts page must say so.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    alerter_url = f"http://127.0.0.1:{closed}"
    query = service_process(
        "query", env_for(mongo_database, LOGRIVER_CONSOLE_ALERTER_URL=alerter_url)
    )
    context, page = await new_page(browser)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    script = "<img src=x onerror=alert(1)>"
    await page.goto(
        f"{query.url}/?since=1h&level=%3Cscript%3Ealert(2)%3C%2Fscript%3E"
        f"&not.host=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(3)%3E&context=..%2F..%2Fv1"
    )
    await expect(page.locator("#status")).to_contain_text("level")
    await expect(page.locator("#exclusions .chip")).to_contain_text('"><img src=x')
    assert await page.locator("#exclusions img").count() == 0
    await expect(page.locator("#context")).to_contain_text("not_found")
    await page.goto(f"{query.url}/?since=1h&service={script}")
    await expect(page.locator("#status")).to_contain_text("service")
    assert await page.input_value("input[name=service]") == script
    for path in ("overview.html?since=%3Cb%3E", "alerts.html?alert=1%3Cb%3E&state=%3Cb%3E"):
        await page.goto(f"{query.url}/{path}")
        await expect(page.locator("#status")).not_to_have_text("loading…")
        assert await page.locator("main b").count() == 0
    await expect(page.locator("#status")).to_contain_text("alerter_unavailable")
    assert dialogs == []
    await context.close()
