"""Storage errors become domain errors in one place (store.storage_errors), never leak asyncpg."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import orjson
import pytest
from starlette.requests import Request

from logriver_alerter.app import _storage_unavailable
from logriver_alerter.repositories import Conflict, StorageUnavailable
from logriver_alerter.rules import RuleSpec
from logriver_alerter.store import PgChannels, PgIncidents, PgProgress, PgRules

SPEC = RuleSpec.model_validate(
    {
        "name": "r",
        "services": ["api"],
        "condition": {"type": "error_rate", "threshold": 0.5},
        "window_seconds": 60,
        "channels": ["a"],
    }
)


class FailingPool:
    """A pool whose every call raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def _fail(self, *_: Any, **__: Any) -> Any:
        raise self.error

    fetchrow = fetch = execute = executemany = _fail


def pool(error: BaseException) -> asyncpg.Pool:
    return cast(asyncpg.Pool, FailingPool(error))


async def test_a_unique_violation_is_a_conflict() -> None:
    with pytest.raises(Conflict):
        await PgRules(pool(asyncpg.UniqueViolationError("duplicate key"))).create(SPEC)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.PostgresConnectionError("the server closed the connection"),
        asyncpg.InterfaceError("pool is closed"),
        asyncpg.QueryCanceledError("statement timeout"),
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        # Raised by a connection PostgreSQL dropped mid-operation when the pool resets it
        # (a restart under load): it once ended the alerter's consumer.
        asyncpg.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        ),
    ],
)
async def test_infrastructure_errors_are_storage_unavailable(error: BaseException) -> None:
    with pytest.raises(StorageUnavailable) as info:
        await PgChannels(pool(error)).list_all()
    assert info.value.__cause__ is error
    with pytest.raises(StorageUnavailable):
        await PgIncidents(pool(error)).active()
    with pytest.raises(StorageUnavailable):  # the consumer's commit: it logs this and goes on
        await PgProgress(pool(error)).save("alerter", "logs.v1", {0: (5, datetime.now(UTC))})


async def test_cancellation_is_never_translated() -> None:
    with pytest.raises(asyncio.CancelledError):
        await PgRules(pool(asyncio.CancelledError())).list_all()


async def test_the_api_answers_503_in_the_one_error_shape() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/v1/rules", "headers": []})
    response = await _storage_unavailable(request, StorageUnavailable("PostgresConnectionError"))
    assert response.status_code == 503
    body = orjson.loads(bytes(response.body))
    assert body["error"] == "storage_unavailable"
    assert set(body) == {"error", "detail", "request_id"}
