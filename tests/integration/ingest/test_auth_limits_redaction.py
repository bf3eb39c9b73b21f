"""401/403 from auth, 429 from the per-key token bucket in Redis, and redaction:
secrets never reach the Kafka record."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.conftest import Topics
from tests.integration.ingest.conftest import Keys, OpenGateway, read_topic, topic_size

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

EVENT = {"service": "auth-test", "message": "hello"}


async def test_missing_bad_and_wrong_scope_keys(
    gateway: OpenGateway, keys: Keys, topics: Topics
) -> None:
    async with gateway() as http:
        missing = await http.post("/v1/logs", json=EVENT, headers={"Authorization": ""})
        bad = await http.post("/v1/logs", json=EVENT, headers={"Authorization": "Bearer lr_x_y"})
        read_only = await http.post(
            "/v1/logs", json=EVENT, headers={"Authorization": "", "X-API-Key": keys.read_only}
        )
        via_x_api_key = await http.post(
            "/v1/logs", json=EVENT, headers={"Authorization": "", "X-API-Key": keys.ingest}
        )
    assert missing.status_code == 401
    assert missing.json()["error"] == "unauthorized"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert bad.status_code == 401
    assert read_only.status_code == 403
    assert "ingest" in read_only.json()["detail"]
    assert via_x_api_key.status_code == 202
    assert await topic_size(topics.main) == 1


async def test_token_bucket_answers_429_with_retry_after(
    gateway: OpenGateway, keys: Keys, topics: Topics
) -> None:
    # 20 events of burst, refilled at 1 event/s: the 21st event must wait.
    limits = {
        "max_batch_events": 20,
        "rate_limit_burst_events": 20,
        "rate_limit_events_per_s": 1.0,
    }
    async with gateway(**limits) as http:
        first = await http.post("/v1/logs", json=[EVENT] * 15)
        second = await http.post("/v1/logs", json=[EVENT] * 10)
        third = await http.post("/v1/logs", json=[EVENT] * 5)
        metrics = (await http.get("/metrics")).text
    assert first.status_code == 202
    assert second.status_code == 429
    assert second.json()["error"] == "rate_limited"
    # 10 events with ~5 tokens left at 1/s: about 5 s to wait.
    assert 4 <= int(second.headers["retry-after"]) <= 6
    assert third.status_code == 202  # the refused request took no tokens
    assert "logriver_ingest_rate_limited_total" in metrics
    assert await topic_size(topics.main) == 20

    # A second gateway instance sees the same, still nearly empty bucket: it lives in Redis.
    async with gateway(**limits) as http:
        other = await http.post("/v1/logs", json=[EVENT] * 10)
    assert other.status_code == 429


async def test_secrets_never_reach_kafka(gateway: OpenGateway, topics: Topics) -> None:
    secrets = {
        "hunter2-pw": "login failed: password=hunter2-pw",
        "eyJhbGciOiJIUzI1NiJ9.e30.sig": "got Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
        "4111 1111 1111 1111": "charge card 4111 1111 1111 1111 failed",
        "jane@example.com": "reset mail for jane@example.com",
        "sk_live_abcdefghijklmnop": "stripe key sk_live_abcdefghijklmnop rejected",
    }
    events: list[dict[str, Any]] = [{"service": "pay", "message": m} for m in secrets.values()]
    events.append(
        {
            "service": "pay",
            "message": "metadata secrets",
            "metadata": {
                "user": "bob",
                "password": "meta-pw-1",
                "request": {"headers": {"Cookie": "session=meta-cookie-2"}},
                "note": "contact ops@example.org",
            },
        }
    )
    async with gateway() as http:
        response = await http.post("/v1/logs", json=events)
        metrics = (await http.get("/metrics")).text
    assert response.status_code == 202
    records = await read_topic(topics.main, expect=len(events))
    raw = b"".join(r.value for r in records)
    for secret in [*secrets, "meta-pw-1", "meta-cookie-2", "ops@example.org"]:
        assert secret.encode() not in raw, secret
    assert raw.count(b"[REDACTED]") == len(secrets) + 3
    meta = next(orjson.loads(r.value) for r in records if b"metadata secrets" in r.value)
    assert meta["metadata"]["user"] == "bob"
    assert meta["metadata"]["password"] == "[REDACTED]"
    assert 'logriver_ingest_redactions_total{rule="card_number"}' in metrics


async def test_metrics_count_accepted_and_rejected(gateway: OpenGateway) -> None:
    def sample(text: str, name: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)
        )

    async with gateway() as http:
        before = (await http.get("/metrics")).text
        await http.post("/v1/logs", json=[EVENT, {"message": "no service"}, EVENT])
        await http.post("/v1/logs", content=b"{", headers={"Content-Type": "application/json"})
        after = (await http.get("/metrics")).text
    accepted = "logriver_ingest_events_accepted_total"
    invalid = 'logriver_ingest_events_rejected_total{reason="validation_failed"}'
    malformed = 'logriver_ingest_events_rejected_total{reason="malformed_json"}'
    assert sample(after, accepted) - sample(before, accepted) == 2
    assert sample(after, invalid) - sample(before, invalid) == 1
    assert sample(after, malformed) - sample(before, malformed) == 1
    assert "logriver_ingest_publish_seconds_bucket" in after
    assert "logriver_ingest_events_in_flight" in after
