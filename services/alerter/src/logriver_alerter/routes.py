"""The admin API (``admin`` scope): rules, channels, alerts, silences, test-fire.

Bad input is a 4xx in the one error shape, never a 5xx: every parameter that
reaches PostgreSQL is bounded here (ids by pattern, integers to the column's
range, times to what ``timestamptz`` holds) and every body field is text
PostgreSQL can store (see ``rules.Text``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from logriver_alerter.channel_safety import header_problems, restore
from logriver_alerter.contract import (
    WITH_BODY,
    AlertDetail,
    AlertHistory,
    ChannelList,
    ChannelOut,
    CurrentAlerts,
    RuleList,
    RuleOut,
    SilenceList,
    SilenceOut,
    Status,
    TestFireResult,
    responses,
)
from logriver_alerter.delivery import Dispatcher, test_fire
from logriver_alerter.evaluator import Evaluator
from logriver_alerter.message import AlertMessage, TopMessage, console_link, trace_link
from logriver_alerter.repositories import Conflict, Repositories
from logriver_alerter.rules import (
    CHANNEL_NAME_PATTERN,
    ID_PATTERN,
    ChannelSpec,
    RuleSpec,
    Severity,
    SilenceSpec,
    StorableTime,
    WebhookChannel,
)
from logriver_alerter.settings import AlerterSettings
from logriver_common.auth import Scope, require_scope
from logriver_common.event import SERVICE_PATTERN
from logriver_common.web.errors import ApiError

router = APIRouter(prefix="/v1", dependencies=[Depends(require_scope(Scope.ADMIN))])
ChannelName = Annotated[str, Path(pattern=CHANNEL_NAME_PATTERN)]
RuleId = Annotated[str, Path(pattern=ID_PATTERN)]
SilenceId = Annotated[str, Path(pattern=ID_PATTERN)]
# alerts.id is a bigserial.
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]
RuleIdFilter = Annotated[str | None, Query(pattern=ID_PATTERN)]
ServiceFilter = Annotated[str | None, Query(pattern=SERVICE_PATTERN)]
AlertState = Literal["pending", "firing", "resolved"]


async def _store(request: Request) -> Repositories:
    # `async`: a plain `def` dependency would run in FastAPI's thread pool.
    store: Repositories = request.app.state.store
    return store


StoreDep = Annotated[Repositories, Depends(_store)]


def _not_found(what: str, key: object) -> ApiError:
    return ApiError(404, "not_found", f"{what} {key!r} does not exist")


async def _check_channels(store: Repositories, spec: RuleSpec) -> None:
    """Unknown channel names are field errors, in the same shape as pydantic's."""
    existing = await store.channels.existing(spec.channels)
    errors = [
        {
            "loc": ["body", "channels", i],
            "msg": f"unknown channel {name!r}; create it with PUT /v1/channels/{name}",
            "type": "unknown_channel",
        }
        for i, name in enumerate(spec.channels)
        if name not in existing
    ]
    if errors:
        raise ApiError(422, "validation_failed", errors)


@router.get("/status", response_model=Status, responses=responses())
async def status(request: Request) -> dict[str, Any]:
    """This instance's share of the work: its partitions, rules and tracked services."""
    evaluator: Evaluator = request.app.state.evaluator
    settings: AlerterSettings = request.app.state.settings
    return {
        "group_id": settings.group_id,
        "topic": settings.kafka.topic,
        "partitions": sorted(evaluator.ready),
        "rules": len(evaluator.rules),
        "services": len(evaluator.windows),
        "active_alerts": len(evaluator.active),
    }


# -- rules -----------------------------------------------------------------------------------


@router.post(
    "/rules", status_code=201, response_model=RuleOut, responses=responses(*WITH_BODY, 409)
)
async def create_rule(spec: RuleSpec, store: StoreDep) -> dict[str, Any]:
    await _check_channels(store, spec)
    try:
        rule = await store.rules.create(spec)
    except Conflict:
        raise ApiError(409, "conflict", f"a rule named {spec.name!r} exists") from None
    return rule.model_dump(mode="json")


@router.get("/rules", response_model=RuleList, responses=responses())
async def list_rules(store: StoreDep) -> dict[str, Any]:
    return {"rules": [r.model_dump(mode="json") for r in await store.rules.list_all()]}


@router.get("/rules/{rule_id}", response_model=RuleOut, responses=responses(404))
async def get_rule(rule_id: RuleId, store: StoreDep) -> dict[str, Any]:
    rule = await store.rules.get(rule_id)
    if rule is None:
        raise _not_found("rule", rule_id)
    return rule.model_dump(mode="json")


@router.put("/rules/{rule_id}", response_model=RuleOut, responses=responses(*WITH_BODY, 404, 409))
async def replace_rule(rule_id: RuleId, spec: RuleSpec, store: StoreDep) -> dict[str, Any]:
    await _check_channels(store, spec)
    try:
        rule = await store.rules.replace(rule_id, spec)
    except Conflict:
        raise ApiError(409, "conflict", f"a rule named {spec.name!r} exists") from None
    if rule is None:
        raise _not_found("rule", rule_id)
    return rule.model_dump(mode="json")


@router.delete("/rules/{rule_id}", status_code=204, responses=responses(404))
async def delete_rule(rule_id: RuleId, store: StoreDep) -> Response:
    if not await store.rules.delete(rule_id):
        raise _not_found("rule", rule_id)
    return Response(status_code=204)


# -- channels --------------------------------------------------------------------------------


@router.put(
    "/channels/{name}",
    response_model=ChannelOut,
    responses={
        **responses(*WITH_BODY),
        201: {"model": ChannelOut, "description": "Created (200 when replaced)."},
    },
)
async def put_channel(
    name: ChannelName, spec: ChannelSpec, store: StoreDep, response: Response
) -> dict[str, Any]:
    """Create or replace. A ``***`` (what GET shows for a secret) keeps the stored value."""
    stored = await store.channels.get(name)
    sent = spec.root.model_dump(mode="json")
    merged, errors = restore(sent, stored.config.model_dump(mode="json") if stored else None)
    if isinstance(spec.root, WebhookChannel):
        errors += header_problems(merged.get("headers") or {}, ["body", "webhook", "headers"])
    if errors:
        raise ApiError(422, "validation_failed", errors)
    if merged != sent:
        spec = ChannelSpec.model_validate(merged)
    channel, created = await store.channels.put(name, spec)
    response.status_code = 201 if created else 200
    return channel.public()


@router.get("/channels", response_model=ChannelList, responses=responses())
async def list_channels(store: StoreDep) -> dict[str, Any]:
    return {"channels": [c.public() for c in await store.channels.list_all()]}


@router.get("/channels/{name}", response_model=ChannelOut, responses=responses(404))
async def get_channel(name: ChannelName, store: StoreDep) -> dict[str, Any]:
    channel = await store.channels.get(name)
    if channel is None:
        raise _not_found("channel", name)
    return channel.public()


@router.delete("/channels/{name}", status_code=204, responses=responses(404, 409))
async def delete_channel(name: ChannelName, store: StoreDep) -> Response:
    users = await store.rules.names_using_channel(name)
    if users:
        raise ApiError(409, "conflict", f"channel {name!r} is used by rules: {', '.join(users)}")
    if not await store.channels.delete(name):
        raise _not_found("channel", name)
    return Response(status_code=204)


@router.post(
    "/channels/{name}/test", response_model=TestFireResult, responses=responses(*WITH_BODY, 404)
)
async def test_channel(name: ChannelName, request: Request, store: StoreDep) -> dict[str, Any]:
    """Send a sample message now (one attempt); the reply is the receiver's status and a
    short reason, never its body."""
    channel = await store.channels.get(name)
    if channel is None:
        raise _not_found("channel", name)
    settings: AlerterSettings = request.app.state.settings
    dispatcher: Dispatcher = request.app.state.dispatcher
    now = datetime.now(UTC)
    message = AlertMessage(
        kind="test",
        alert_id=None,
        rule_id="test",
        rule_name="Test notification",
        severity="info",
        labels={},
        service="logriver-test",
        condition="error_rate",
        level="ERROR",
        value=0.5,
        threshold=0.1,
        matched=50,
        total=100,
        window_seconds=300,
        top_messages=[TopMessage(message="this is a test notification from logriver", count=1)],
        sample_trace_id=None,
        started_at=now,
        console_url=console_link(settings.console_base_url, "logriver-test"),
        trace_url=trace_link(settings.console_base_url, None),
    )
    notification = await store.deliveries.enqueue_test(name, message, settings.delivery_lease_s)
    result = await test_fire(dispatcher, channel, notification)
    return {
        "channel": name,
        "delivered": result.ok,
        "status_code": result.status_code,
        "error": result.error,
        "duration_ms": result.duration_ms,
    }


# -- alerts ----------------------------------------------------------------------------------


@router.get("/alerts/current", response_model=CurrentAlerts, responses=responses())
async def current_alerts(
    store: StoreDep,
    rule_id: RuleIdFilter = None,
    service: ServiceFilter = None,
    severity: Severity | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> dict[str, Any]:
    rows = await store.incidents.search(
        states=["pending", "firing"],
        rule_id=rule_id,
        service=service,
        severity=severity,
        since=None,
        until=None,
        before_id=None,
        limit=limit,
    )
    return {"alerts": [r.public() for r in rows]}


@router.get("/alerts", response_model=AlertHistory, responses=responses())
async def alert_history(
    store: StoreDep,
    state: Annotated[list[AlertState] | None, Query(max_length=3)] = None,
    rule_id: RuleIdFilter = None,
    service: ServiceFilter = None,
    severity: Severity | None = None,
    since: StorableTime | None = None,
    until: StorableTime | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Newest first; ``since``/``until`` select incidents active in that range;
    page on with ``before_id`` = the previous page's ``next_before_id``."""
    rows = await store.incidents.search(
        states=list(state) if state else None,
        rule_id=rule_id,
        service=service,
        severity=severity,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit,
    )
    return {
        "alerts": [r.public() for r in rows],
        "next_before_id": rows[-1].id if len(rows) == limit else None,
    }


@router.get("/alerts/{alert_id}", response_model=AlertDetail, responses=responses(404))
async def get_alert(alert_id: AlertId, store: StoreDep) -> dict[str, Any]:
    row = await store.incidents.get(alert_id)
    if row is None:
        raise _not_found("alert", alert_id)
    return {**row.public(), "deliveries": await store.deliveries.attempts_of(alert_id)}


# -- silences --------------------------------------------------------------------------------


@router.post(
    "/silences", status_code=201, response_model=SilenceOut, responses=responses(*WITH_BODY)
)
async def create_silence(spec: SilenceSpec, store: StoreDep) -> dict[str, Any]:
    now = datetime.now(UTC)
    if spec.ends_at <= now:
        raise ApiError(
            422,
            "validation_failed",
            [{"loc": ["body", "ends_at"], "msg": "ends_at is in the past", "type": "value_error"}],
        )
    return (await store.silences.create(spec, now)).model_dump(mode="json")


@router.get("/silences", response_model=SilenceList, responses=responses())
async def list_silences(store: StoreDep, active: bool = False) -> dict[str, Any]:
    silences = await store.silences.list_all(active_at=datetime.now(UTC) if active else None)
    return {"silences": [s.model_dump(mode="json") for s in silences]}


@router.delete("/silences/{silence_id}", status_code=204, responses=responses(404))
async def expire_silence(silence_id: SilenceId, store: StoreDep) -> Response:
    if not await store.silences.expire(silence_id, datetime.now(UTC)):
        raise _not_found("silence", silence_id)
    return Response(status_code=204)
