"""Opening a subscription: the checks shared by SSE and WebSocket, in one place.

Order matters: the filter and resume id are checked before a subscriber slot
is taken, so hostile input costs nothing but a 400; the slot is taken before
Kafka is asked anything, so a flood of resumes is bounded by the limits.
Compiling a regex is charged to the key's regex budget (budget.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from logriver_stream import metrics
from logriver_stream.access import Principal
from logriver_stream.cursor import CursorError
from logriver_stream.filters import Filter, FilterError, FilterSpec
from logriver_stream.hub import TooManyRegexFilters, TooManySubscribers
from logriver_stream.replay import ResumeError, parse_since
from logriver_stream.session import Session, StreamContext
from logriver_stream.subscriber import Subscriber


@dataclass
class SubscribeError(Exception):
    """Why a subscription was refused; ``in_stream`` errors are sent as a stream event."""

    status: int
    code: str
    detail: Any
    in_stream: bool = False

    def __post_init__(self) -> None:
        super().__init__(f"{self.code}: {self.detail}")


def compile_filter(ctx: StreamContext, spec: FilterSpec, key_id: str) -> Filter:
    """``spec`` compiled for ``key_id``; :class:`SubscribeError` when refused."""
    regex = None
    if spec.regex is not None:
        budget, compiler = ctx.hub.budget, ctx.regexes
        compiled = None
        try:
            if compiler.cached(spec.regex):
                compiled = compiler.compile(spec.regex)
            else:
                compiled = budget.run(key_id, compiler.compile, spec.regex)
        except FilterError as exc:
            raise SubscribeError(400, "invalid_filter", exc.detail) from None
        if compiled is None:
            raise SubscribeError(
                429,
                "regex_budget_exhausted",
                "this API key has spent its regex time for now; retry in a second, "
                "or use fewer or simpler regex filters",
            )
        regex = compiled
    return Filter(spec, regex)


async def subscribe(
    ctx: StreamContext,
    *,
    principal: Principal,
    spec: FilterSpec,
    transport: str,
    resume: str | None,
    since: str | None,
) -> Session:
    """A prepared session (replay resolved), or :class:`SubscribeError`."""
    try:
        return await _subscribe(
            ctx, principal=principal, spec=spec, transport=transport, resume=resume, since=since
        )
    except SubscribeError as exc:
        metrics.REJECTED.labels(exc.code).inc()
        raise


async def _subscribe(
    ctx: StreamContext,
    *,
    principal: Principal,
    spec: FilterSpec,
    transport: str,
    resume: str | None,
    since: str | None,
) -> Session:
    compiled = compile_filter(ctx, spec, principal.key_id)
    position = None
    since_at = None
    if resume is not None:
        try:
            position = ctx.codec.decode(resume)
        except CursorError as exc:
            raise SubscribeError(400, "invalid_resume", str(exc)) from None
    elif since is not None:
        try:
            since_at = parse_since(since, max_seconds=ctx.settings.max_since_seconds)
        except ValueError as exc:
            raise SubscribeError(
                400, "invalid_filter", [{"param": "since", "msg": str(exc)}]
            ) from None
    subscriber = Subscriber(
        filter=compiled,
        key_id=principal.key_id,
        transport=transport,
        queue_size=ctx.settings.queue_size,
        overflow=ctx.settings.overflow,
    )
    try:
        ctx.admission.acquire(subscriber)
    except TooManySubscribers as exc:
        raise SubscribeError(429, "too_many_subscribers", str(exc)) from None
    except TooManyRegexFilters as exc:
        raise SubscribeError(429, "too_many_regex_filters", str(exc)) from None
    session = Session(ctx, subscriber)
    try:
        await session.prepare(resume=position, since=since_at)
    except ResumeError as exc:
        await session.close()
        raise SubscribeError(
            410 if exc.code == "resume_expired" else 400,
            exc.code,
            exc.detail,
            in_stream=exc.code == "resume_expired",
        ) from None
    except BaseException:
        await session.close()
        raise
    return session
