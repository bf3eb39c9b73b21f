"""Hostile input gets a clear error and never hurts the instance or its other clients."""

from __future__ import annotations

import base64

import httpx
import pytest
from pydantic import SecretStr

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
    no_read, _ = issue_token(StreamTokenSettings(), "k1", ["ingest"])
    good, _ = issue_token(StreamTokenSettings(), "k1", ["read"])
    async with httpx.AsyncClient(base_url=instances.a.url) as client:
        assert (await client.get("/v1/stream")).status_code == 401
        resp = await client.get("/v1/stream", headers={"Authorization": "Bearer lr_x_y"})
        assert resp.status_code == 401
        for token, status, words in (
            (expired, 401, "expired"),
            (wrong_secret, 401, "signature"),
            ("x" * 5000, 401, "malformed"),
            (no_read, 403, "read"),
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


async def test_regex_bomb_ends_only_its_own_stream(instances: Instances, run_id: str) -> None:
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
            ]
        )
        await bomb.wait_end()
        assert bomb.errors[0]["error"] == "regex_timeout"
        await bystander.wait_logs(2)
        assert [e["metadata"]["seq"] for e in bystander.logs] == [1, 2]
    async with httpx.AsyncClient(base_url=instances.a.url) as client:
        assert (await client.get("/readyz")).status_code == 200


async def test_too_many_subscribers(
    instances: Instances, service_process: StartService, run_id: str
) -> None:
    proc = service_process(
        "stream",
        stream_env(instances.topic, max_subscribers="3", max_subscribers_per_key="2"),
    )
    tokens = {key: issue_token(StreamTokenSettings(), key, ["read"])[0] for key in ("a", "b")}
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
