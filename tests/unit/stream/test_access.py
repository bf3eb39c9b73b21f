"""Who may open a stream: a token counts only while its API key is active."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from starlette.datastructures import Headers

from logriver_common.auth import MAX_CACHE_TTL_S, ApiKey, ApiKeyStore, Scope
from logriver_common.stream_tokens import StreamTokenSettings, issue_token
from logriver_common.web.errors import ApiError
from logriver_stream.access import authenticate_headers

SETTINGS = StreamTokenSettings()


def key(key_id: str, *scopes: Scope) -> ApiKey:
    return ApiKey(key_id, "n", "p", frozenset(scopes), datetime.now(UTC), None)


class FakeStore:
    def __init__(self, *keys: ApiKey) -> None:
        self.keys = {k.id: k for k in keys}
        self.asked: list[str] = []

    async def active_key(self, key_id: str) -> ApiKey | None:
        self.asked.append(key_id)
        return self.keys.get(key_id)


async def auth(store: FakeStore, token: str) -> str:
    principal = await authenticate_headers(Headers({}), token, cast(ApiKeyStore, store), SETTINGS)
    return principal.key_id


async def test_a_token_opens_streams_while_its_key_is_active() -> None:
    store = FakeStore(key("k1", Scope.READ))
    token, _ = issue_token(SETTINGS, "k1", ["read"])
    assert await auth(store, token) == "k1"
    del store.keys["k1"]  # revoked
    with pytest.raises(ApiError) as info:
        await auth(store, token)
    assert (info.value.status_code, info.value.error) == (401, "unauthorized")
    assert "revoked" in str(info.value.detail)


@pytest.mark.parametrize(
    ("key_scopes", "token_scopes", "status"),
    [
        ((Scope.INGEST,), ["read"], 403),  # the key itself cannot read
        ((Scope.READ,), ["ingest"], 403),  # the token was not issued for reading
        ((), ["read"], 403),
    ],
)
async def test_both_the_token_and_its_key_need_read(
    key_scopes: tuple[Scope, ...], token_scopes: list[str], status: int
) -> None:
    store = FakeStore(key("k1", *key_scopes))
    token, _ = issue_token(SETTINGS, "k1", token_scopes)
    with pytest.raises(ApiError) as info:
        await auth(store, token)
    assert info.value.status_code == status


async def test_a_token_for_an_unknown_key_is_refused() -> None:
    token, _ = issue_token(SETTINGS, "never-existed", ["read"])
    with pytest.raises(ApiError) as info:
        await auth(FakeStore(), token)
    assert info.value.status_code == 401


@pytest.mark.parametrize("ttl", [MAX_CACHE_TTL_S + 0.001, 30.0, -1.0])
def test_no_key_is_cached_for_more_than_five_seconds(ttl: float) -> None:
    with pytest.raises(ValueError, match="cache_ttl_s"):
        ApiKeyStore(cast(Any, None), cache_ttl_s=ttl)


class CountingPool:
    def __init__(self, row: dict[str, Any] | None) -> None:
        self.row = row
        self.fetches = 0

    async def fetchrow(self, query: str, *args: Any) -> dict[str, Any] | None:
        self.fetches += 1
        return self.row


async def test_the_key_cache_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("logriver_common.auth.time.monotonic", lambda: now[0])
    row = {
        "id": "k1",
        "name": "n",
        "prefix": "p",
        "scopes": ["read"],
        "created_at": datetime.now(UTC),
        "revoked_at": None,
    }
    pool = CountingPool(row)
    store = ApiKeyStore(cast(Any, pool), cache_ttl_s=2.0)
    assert await store.active_key("k1") is not None
    assert await store.lookup("lr_x_y") is not None
    assert pool.fetches == 2
    assert await store.active_key("k1") is not None  # cached
    assert pool.fetches == 2
    pool.row = None  # revoked elsewhere
    now[0] += 2.0
    assert await store.active_key("k1") is None
    assert await store.lookup("lr_x_y") is None
    assert pool.fetches == 4
