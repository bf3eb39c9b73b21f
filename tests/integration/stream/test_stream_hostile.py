"""Hostile input gets a clear error and never hurts the instance or its other clients."""

from __future__ import annotations

import base64
import time

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from logriver_common.auth import ApiKeyStore, Scope
from logriver_common.stream_tokens import StreamTokenSettings, issue_token
from logriver_stream.cursor import CursorCodec
from tests.conftest import StartService
from tests.integration.stream.clients import AUTH, EventProducer, SseReader, WsReader, event
from tests.integration.stream.conftest import Instances, stream_env
from tests.stack import eventually

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"level": "loud"}, "level"),
        ({"service": "spaces are not allowed"}, "service"),
        ({"trace_id": "not-hex"}, "trace_id"),
        ({"meta.$where": "1"}, "meta"),
        ({"regex": "(unclosed"}, "regex"),
        ({"regex": "a" * 300}, "regex"),
        ({"regex": "((a{1,100}){1,100}){1,100}"}, "regex"),  # nested counted repeats
        ({"regex": r"\pL{1000}"}, "regex"),  # over RE2's compile memory bound
        ({"regex": ".{0,1000}x"}, "regex"),  # too large a program
        ({"regex": "(?=look)ahead"}, "regex"),  # not RE2 syntax
        ({"q": "x" * 300}, "q"),
        ({"servce": "api"}, "servce"),
        ({"since": "forever"}, "since"),
        ({"since": "400d"}, "since"),
    ],
)
async def test_bad_filters_are_400_naming_the_parameter(
    instances: Instances, params: dict[str, str], param: str
) -> None:
    async with httpx.AsyncClient(base_url=instances.a.url) as client:
        resp = await client.get("/v1/stream", params=params, headers=AUTH)
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "invalid_filter"
    assert any(d["param"].startswith(param) for d in body["detail"]), body


def _forged_cursors(topic: str) -> list[str]:
    codec = CursorCodec(topic)
    return [
        "garbage!!",
        "A" * 5000,
        base64.urlsafe_b64encode(b"\x01random bytes here").decode().rstrip("="),
        CursorCodec("some.other.topic").encode({0: 1}),
        codec.encode({p: 10**15 for p in range(6)}),  # far beyond the end of the topic
        codec.encode({99: 0}),  # a partition the topic does not have
        codec.encode({0: 0, 6: 0}),  # ... even next to real ones
        codec.encode({}),  # no partition at all (would have replayed everything)
    ]


async def test_malformed_and_forged_resume_ids_are_400(instances: Instances) -> None:
    async with httpx.AsyncClient(base_url=instances.a.url) as client:
        for cursor in _forged_cursors(instances.topic):
            for request in (
                {"headers": {**AUTH, "Last-Event-ID": cursor}},
                {"headers": AUTH, "params": {"resume": cursor}},
            ):
                resp = await client.get("/v1/stream", **request)  # type: ignore[arg-type]
                assert resp.status_code == 400, (cursor, resp.text)
                assert resp.json()["error"] == "invalid_resume"
        assert (await client.get("/healthz")).status_code == 200


async def test_websocket_rejects_bad_input_with_close_reasons(instances: Instances) -> None:
    base = instances.b.url.replace("http", "ws") + "/v1/ws"
    cases = [
        (f"{base}?level=loud", AUTH, 4400, "invalid_filter"),
        (f"{base}?resume=garbage!!", AUTH, 4400, "invalid_resume"),
        (base, {}, 4401, "unauthorized"),
        (base, {"X-API-Key": "lr_nope_nope"}, 4401, "unauthorized"),
        (f"{base}?token=forged.token", {}, 4401, "unauthorized"),
    ]
    for url, headers, code, error in cases:
        async with WsReader(url, headers=headers) as ws:
            await ws.wait_closed()
            assert ws.close_code == code, (url, ws.close_reason)
            assert ws.close_reason is not None
            assert ws.close_reason.startswith(error)
            assert ws.of_type("error")[0]["error"] == error


async def test_bad_tokens_and_keys(instances: Instances) -> None:
    expired, _ = issue_token(StreamTokenSettings(ttl_seconds=-5), "k1", ["read"])
    wrong_secret, _ = issue_token(StreamTokenSettings(secret=SecretStr("nope")), "k1", ["read"])
    no_read, _ = issue_token(StreamTokenSettings(), "dev", ["ingest"])
    unknown_key, _ = issue_token(StreamTokenSettings(), "no-such-key", ["read"])
    good, _ = issue_token(StreamTokenSettings(), "dev", ["read"])
    async with httpx.AsyncClient(base_url=instances.a.url) as client:
        assert (await client.get("/v1/stream")).status_code == 401
        resp = await client.get("/v1/stream", headers={"Authorization": "Bearer lr_x_y"})
        assert resp.status_code == 401
        for token, status, words in (
            (expired, 401, "expired"),
            (wrong_secret, 401, "signature"),
            ("x" * 5000, 401, "malformed"),
            (no_read, 403, "read"),
            (unknown_key, 401, "revoked or unknown"),  # a token counts only with its key
        ):
            resp = await client.get("/v1/stream", params={"token": token})
            assert resp.status_code == status, resp.text
            assert words in resp.json()["detail"]
    # A valid token works without any header (what a browser's EventSource does).
    async with SseReader(instances.a.url, {"token": good, "service": "x"}, headers={}) as sse:
        await sse.wait_open()
    url = instances.a.url.replace("http", "ws") + f"/v1/ws?token={no_read}"
    async with WsReader(url, headers={}) as ws:
        await ws.wait_closed()
        assert ws.close_code == 4403


async def test_backtracking_bomb_is_cheap_under_re2(instances: Instances, run_id: str) -> None:
    """``(a|aa)+$`` froze backtracking engines on a long line; RE2 matches it linearly."""
    svc = f"{run_id}-bomb"
    async with (
        SseReader(instances.a.url, {"service": svc, "regex": "(a|aa)+$"}) as bomb,
        SseReader(instances.a.url, {"service": svc}) as bystander,
        EventProducer(instances.topic) as producer,
    ):
        await bomb.wait_open()
        await bystander.wait_open()
        await producer.send(
            [
                event(svc, 1, run=run_id, message="a" * 20_000 + "!"),
                event(svc, 2, run=run_id, message="fine"),
                event(svc, 3, run=run_id, message="x" + "a" * 20_000),
            ]
        )
        await bystander.wait_logs(3)
        await bomb.wait_logs(1)
        assert [e["metadata"]["seq"] for e in bystander.logs] == [1, 2, 3]
        assert [e["metadata"]["seq"] for e in bomb.logs] == [3]
        assert bomb.errors == []
    async with httpx.AsyncClient(base_url=instances.a.url) as client:
        assert (await client.get("/readyz")).status_code == 200


async def test_the_issue_regex_is_refused_fast_and_the_instance_stays_healthy(
    instances: Instances,
) -> None:
    ws_url = instances.a.url.replace("http", "ws") + "/v1/ws?service=x"
    async with httpx.AsyncClient(base_url=instances.a.url) as client:
        for _ in range(20):  # repeats are answered from the compile cache
            started = time.perf_counter()
            resp = await client.get(
                "/v1/stream", params={"regex": "((a{1,100}){1,100}){1,100}"}, headers=AUTH
            )
            assert time.perf_counter() - started < 2.0
            assert resp.status_code == 400
            body = resp.json()
            assert body["error"] == "invalid_filter"
            assert body["detail"][0]["param"] == "regex"
            assert body["request_id"]
        assert (await client.get("/readyz")).status_code == 200
    # A WebSocket filter change to a refused pattern is an error; the stream goes on.
    async with WsReader(ws_url) as ws:
        await ws.wait_for("open")
        await ws.send({"type": "filter", "filter": {"regex": r"\pL{1000}"}})
        errors = await ws.wait_for("error")
        assert errors[0]["error"] == "invalid_filter"
        await ws.send({"type": "filter", "filter": {"regex": "ok$"}})
        acks = await ws.wait_for("filter")
        assert acks[0]["filter"] == {"regex": "ok$"}
        assert not ws.closed


async def test_regex_subscriptions_are_capped_per_key(
    instances: Instances, service_process: StartService, run_id: str, postgres_dsn: str
) -> None:
    proc = service_process(
        "stream",
        {
            **stream_env(instances.topic, regex_max_per_key="2"),
            "LOGRIVER_POSTGRES_DSN": postgres_dsn,
        },
    )
    greedy, other = await _create_read_keys(postgres_dsn, 2)
    ws_base = proc.url.replace("http", "ws") + "/v1/ws"
    readers = [
        SseReader(proc.url, {"service": run_id, "regex": f"#{i}$"}, headers=_bearer(greedy))
        for i in range(2)
    ]
    try:
        for reader in readers:
            await (await reader.__aenter__()).wait_open()
        async with httpx.AsyncClient(base_url=proc.url) as client:
            resp = await client.get("/v1/stream", params={"regex": "#3$"}, headers=_bearer(greedy))
            assert resp.status_code == 429
            assert resp.json()["error"] == "too_many_regex_filters"
            # Without a regex the same key is still admitted; another key has its own cap.
            async with client.stream(
                "GET", "/v1/stream", params={"q": "x"}, headers=_bearer(greedy)
            ) as plain:
                assert plain.status_code == 200
            async with client.stream(
                "GET", "/v1/stream", params={"regex": "#3$"}, headers=_bearer(other)
            ) as theirs:
                assert theirs.status_code == 200
        async with WsReader(f"{ws_base}?regex=x", headers=_bearer(greedy)) as ws:
            await ws.wait_closed()
            assert ws.close_code == 4429
            assert ws.close_reason is not None
            assert ws.close_reason.startswith("too_many_regex_filters")
        # A filter change that would add a third regex is refused in place.
        async with WsReader(f"{ws_base}?service=x", headers=_bearer(greedy)) as ws:
            await ws.wait_for("open")
            await ws.send({"type": "filter", "filter": {"regex": "y"}})
            errors = await ws.wait_for("error")
            assert errors[0]["error"] == "too_many_regex_filters"
            assert not ws.closed
    finally:
        for reader in readers:
            await reader.close()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _create_read_keys(dsn: str, count: int) -> list[str]:
    """Keys with ``read`` scope in the private schema the test's stream instance uses."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        store = ApiKeyStore(pool)
        await store.prepare(local_mode=True)
        return [(await store.create(f"test-{i}", {Scope.READ}))[1] for i in range(count)]
    finally:
        await pool.close()


async def test_too_many_subscribers(
    instances: Instances, service_process: StartService, run_id: str, postgres_dsn: str
) -> None:
    proc = service_process(
        "stream",
        {
            **stream_env(instances.topic, max_subscribers="3", max_subscribers_per_key="2"),
            "LOGRIVER_POSTGRES_DSN": postgres_dsn,
        },
    )
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        key_ids = {
            name: (await ApiKeyStore(pool).create(f"test-{name}", {Scope.READ}))[0].id
            for name in ("a", "b")
        }
    finally:
        await pool.close()
    tokens = {
        name: issue_token(StreamTokenSettings(), key_id, ["read"])[0]
        for name, key_id in key_ids.items()
    }
    ws_base = proc.url.replace("http", "ws") + "/v1/ws"
    first = SseReader(proc.url, {"token": tokens["a"]}, headers={})
    second = SseReader(proc.url, {"token": tokens["a"]}, headers={})
    try:
        await (await first.__aenter__()).wait_open()
        await (await second.__aenter__()).wait_open()
        async with httpx.AsyncClient(base_url=proc.url) as client:
            resp = await client.get("/v1/stream", params={"token": tokens["a"]})
            assert resp.status_code == 429
            assert resp.json()["error"] == "too_many_subscribers"
            assert "API key" in resp.json()["detail"]
            assert resp.headers["retry-after"]
        async with WsReader(f"{ws_base}?token={tokens['a']}", headers={}) as ws:
            await ws.wait_closed()
            assert ws.close_code == 4429
        async with WsReader(f"{ws_base}?token={tokens['b']}", headers={}) as ws:
            await ws.wait_for("open")  # the third subscriber on the instance
            async with httpx.AsyncClient(base_url=proc.url) as client:
                resp = await client.get("/v1/stream", params={"token": tokens["b"]})
            assert resp.status_code == 429
            assert "instance" in resp.json()["detail"]
    finally:
        await first.close()
        await second.close()

    # Slots are released when clients leave (the server notices the disconnect).
    async def admitted() -> bool:
        async with (
            httpx.AsyncClient(base_url=proc.url) as client,
            client.stream("GET", "/v1/stream", params={"token": tokens["a"]}) as resp,
        ):
            return resp.status_code == 200

    await eventually(admitted, within=10, what="a slot freed by leaving clients")
