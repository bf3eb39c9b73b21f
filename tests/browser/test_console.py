"""The web console in a real browser: search, follow the cursor, live tail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from logriver_common.clients import kafka_producer
from logriver_common.documents import event_to_document
from logriver_common.event import Level, LogEvent
from logriver_common.settings import KafkaSettings
from tests.browser.loading import store
from tests.conftest import StartService, Topics
from tests.processes import OUTPUT_DIR
from tests.stack import STACK

pytestmark = [pytest.mark.integration]
EVENTS = 450
LEVELS = list(Level)


async def load_events(database: str) -> list[dict[str, Any]]:
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    docs = [
        event_to_document(
            LogEvent(
                timestamp=newest - timedelta(seconds=i // 3),
                service=f"web-{i % 4}",
                level=LEVELS[i % 5],
                message=f"request {i} handled",
                trace_id=f"{i + 1:032x}" if i % 10 == 0 else None,
                metadata={"n": i},
            ),
            None,
        )
        for i in range(EVENTS)
    ]
    await store(database, docs)
    return docs


def service_env(database: str, **extra: str) -> dict[str, str]:
    return {
        "LOGRIVER_MONGO_DATABASE": database,
        "LOGRIVER_OTEL_ENABLED": "false",
        # Aggregations are cached in Redis by their filters: keep other tests' answers out.
        "LOGRIVER_REDIS_KEY_PREFIX": f"{database}:",
        **extra,
    }


async def rows(page: Page) -> int:
    return await page.locator("#results tr.event").count()


async def test_search_follows_the_cursor(
    browser: Browser, service_process: StartService, mongo_database: str
) -> None:
    await load_events(mongo_database)
    query = service_process("query", service_env(mongo_database))
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{query.url}/")
    # The dev key is pre-filled in local mode and the default search (last hour) runs.
    await expect(page.locator("#results tr.event")).to_have_count(100)
    await expect(page.locator("#histogram rect.bar").first).to_be_visible()
    assert await page.locator("#histogram").get_attribute("data-total") == str(EVENTS)

    # Infinite scroll: reaching the bottom loads the next cursor page, to the end.
    for expected in (200, 300, 400, EVENTS):
        await page.locator("#sentinel").scroll_into_view_if_needed()
        await expect(page.locator("#results tr.event")).to_have_count(expected)
    await expect(page.locator("#status")).to_contain_text(f"{EVENTS} events (end)")
    ids = await page.locator("#results tr.event").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    )
    assert len(set(ids)) == EVENTS

    # A filtered search, level colours and an expandable row with a Jaeger link.
    await page.fill("input[name=service]", "web-2")
    await page.select_option("select[name=level]", ">=ERROR")
    await page.click("#search")
    await expect(page.locator("#status")).to_contain_text("(end)")
    services = await page.locator("#results tr.event td:nth-child(3)").all_inner_texts()
    assert services
    assert set(services) == {"web-2"}
    badges = page.locator("#results .level-ERROR, #results .level-CRITICAL")
    assert await badges.count() == len(services)
    first = page.locator("#results tr.event").first
    await first.click()
    details = page.locator("#results tr.details").first
    await expect(details).to_be_visible()
    await expect(details).to_contain_text("meta.n")
    await page.fill("input[name=service]", "")
    await page.select_option("select[name=level]", "")
    await page.click("#search")
    await expect(page.locator("#results tr.event")).to_have_count(100)
    # Event 0 carries a trace id: its expanded details link to Jaeger.
    await page.locator("#results tr.event", has_text="request 0 handled").click()
    link = page.locator("#results a.trace-link").first
    await expect(link).to_be_visible()
    assert await link.get_attribute("href") == f"http://127.0.0.1:16686/trace/{1:032x}"
    OUTPUT_DIR.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT_DIR / "query-console-search.png"), full_page=False)


async def live_tail(
    browser: Browser, service_process: StartService, database: str, topics: Topics, shot: str
) -> list[str] | None:
    """Open the live tail, produce events, expect the matching one to appear.

    None when it worked; if the tail never went live, the browser console's
    messages (a CORS or auth failure shows up there).
    """
    stream = service_process("stream", {**topics.env(), "LOGRIVER_OTEL_ENABLED": "false"})
    query = service_process(
        "query", service_env(database, LOGRIVER_QUERY_STREAM_BASE_URL=stream.url)
    )
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    await page.goto(f"{query.url}/tail.html")
    await page.fill("input[name=service]", "tail-test")
    await page.click("#start")
    try:
        await expect(page.locator("#status")).to_contain_text("live", timeout=15_000)
    except AssertionError:
        return messages or ["the tail never went live and the browser logged nothing"]

    marker = f"fresh event {uuid.uuid4()}"
    producer = kafka_producer(KafkaSettings(bootstrap_servers=STACK.kafka))
    await producer.start()
    try:
        for service, message in (("other-service", "filtered out"), ("tail-test", marker)):
            event = LogEvent(service=service, level=Level.WARNING, message=message)
            await producer.send_and_wait(topics.main, event.to_json(), key=service.encode())
    finally:
        await producer.stop()
    line = page.locator("#tail .line", has_text=marker)
    await expect(line).to_be_visible(timeout=20_000)
    await expect(page.locator("#tail .line", has_text="filtered out")).to_have_count(0)

    # The filter box hides non-matching lines; pause holds new lines until resume.
    await page.fill("#filter-box", "no line has this")
    await expect(line).to_be_hidden()
    await page.fill("#filter-box", "")
    await expect(line).to_be_visible()
    await page.click("#pause")
    await expect(page.locator("#pause")).to_have_text("Resume")
    await page.click("#pause")
    await expect(page.locator("#pause")).to_have_text("Pause")
    OUTPUT_DIR.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT_DIR / shot))
    return None


async def test_live_tail_shows_a_new_event(
    browser: Browser, service_process: StartService, mongo_database: str, topics: Topics
) -> None:
    """The real thing, with the browser's same-origin policy on."""
    problems = await live_tail(
        browser, service_process, mongo_database, topics, "query-console-live-tail.png"
    )
    assert problems is None, problems
