"""The console's window on the alerter: incidents, history and delivery attempts.

The alerter (its own origin, no CORS) keeps incidents in PostgreSQL behind its
admin API. The console's alerts page reads them through these few GET routes,
which forward the caller's own key: the alerter decides (``admin`` scope), this
service only relays. Paths and parameters are whitelisted and bounded here; the
alerter's URL comes from settings, never from the request.
"""

from __future__ import annotations

import logging
from typing import Annotated

import httpx
from fastapi import APIRouter, Path, Request, Response
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from logriver_common.web.errors import ApiError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/console/alerter", tags=["console"], include_in_schema=False)

# The alerter's own query parameters for these reads; anything else is refused here.
ALLOWED_PARAMS = frozenset(
    {"state", "rule_id", "service", "severity", "since", "until", "before_id", "limit"}
)
MAX_QUERY_CHARS = 2048
MAX_BODY_BYTES = 4 * 1024 * 1024
FORWARDED_HEADERS = ("authorization", "x-api-key", "x-request-id")
AlertId = Annotated[str, Path(pattern=r"^[1-9][0-9]{0,18}$")]


class ConsoleSettings(BaseSettings):
    """Where the console reads alerts (``LOGRIVER_CONSOLE_*``)."""

    model_config = SettingsConfigDict(env_prefix="LOGRIVER_CONSOLE_", extra="ignore")

    alerter_url: str = "http://127.0.0.1:8003"
    alerter_timeout_s: float = Field(default=5.0, gt=0, le=60)


def _settings(request: Request) -> ConsoleSettings:
    settings = getattr(request.app.state, "console_settings", None)
    if not isinstance(settings, ConsoleSettings):
        settings = ConsoleSettings()
        request.app.state.console_settings = settings
    return settings


def _query(request: Request) -> httpx.QueryParams:
    raw = request.url.query
    if len(raw) > MAX_QUERY_CHARS:
        raise ApiError(400, "bad_request", f"the query string is over {MAX_QUERY_CHARS} chars")
    params = list(request.query_params.multi_items())
    for name, _ in params:
        if name not in ALLOWED_PARAMS:
            shown = name if len(name) <= 64 else name[:64] + "…"
            raise ApiError(400, "unknown_parameter", f"unknown parameter {shown!r}")
    return httpx.QueryParams(tuple(params))


async def _forward(request: Request, path: str) -> Response:
    settings = _settings(request)
    params = _query(request)
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_HEADERS}
    url = f"{settings.alerter_url.rstrip('/')}/v1/{path}"
    try:
        async with (
            httpx.AsyncClient(timeout=settings.alerter_timeout_s, follow_redirects=False) as http,
            http.stream("GET", url, params=params, headers=headers) as resp,
        ):
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise ApiError(502, "alerter_unavailable", "the alerter's answer is too large")
            status = resp.status_code
            media = resp.headers.get("content-type", "application/json")
    except httpx.HTTPError as exc:
        log.warning("alerter unreachable", extra={"error": type(exc).__name__})
        raise ApiError(
            503,
            "alerter_unavailable",
            f"the alerter did not answer: {type(exc).__name__}",
            headers={"Retry-After": "5"},
        ) from None
    if status >= 500 or not media.startswith("application/json"):
        raise ApiError(502, "alerter_unavailable", f"the alerter answered HTTP {status}")
    # The alerter's own answer, errors included (401/403/404/422 in the one error shape).
    return Response(bytes(body), status_code=status, media_type="application/json")


@router.get("/alerts/current")
async def current_alerts(request: Request) -> Response:
    return await _forward(request, "alerts/current")


@router.get("/alerts")
async def alert_history(request: Request) -> Response:
    return await _forward(request, "alerts")


@router.get("/alerts/{alert_id}")
async def alert_with_deliveries(request: Request, alert_id: AlertId) -> Response:
    if request.query_params:
        raise ApiError(400, "unknown_parameter", "this read takes no parameters")
    return await _forward(request, f"alerts/{int(alert_id)}")
