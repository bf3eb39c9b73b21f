"""The one way a service starts and stops: an ``AsyncExitStack`` plus supervised tasks.

Every service lifespan opens its clients inside ``async with AsyncExitStack()``
and registers each close right after the open, so a start that fails half way
(a migration, a consumer that cannot reach Kafka) still closes everything it had
opened, in reverse order. Background loops run through :class:`Supervisor`:

* a loop that raises, or returns a reason (``str``), or returns at all before it
  was asked to stop, marks the service unready (``/readyz`` answers 503 with the
  reason under the loop's check name) instead of leaving it silently idle;
* a loop that raises or returns early also fails liveness (``/healthz`` 503), so
  the orchestrator restarts the process: every loop handles the failures it
  expects, so an escaped one is a bug or an unforeseen failure (an asyncpg error
  type after a PostgreSQL restart once ended the alerter's consumer), and a restart
  rebuilds its state. A reason returned on purpose (the dead-letter guard) does not:
  a restart would only repeat it;
* each loop's stop is registered on the same stack when it starts, so it stops
  before anything that was opened earlier (the clients it uses) is closed:
  ``stop()`` first (drain: finish the batch in flight), then cancel past the
  drain timeout.

    async with AsyncExitStack() as stack:
        pool = await clients.postgres_pool(settings.postgres)
        stack.push_async_callback(pool.close)
        tasks = Supervisor(stack, app.state.readiness)
        tasks.spawn("consumer", runner.run(), stop=runner.request_stop, drain_timeout_s=10)
        yield
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from logriver_common.web.health import Readiness

log = logging.getLogger(__name__)
CANCEL_WAIT_S = 5.0


class Supervisor:
    """Background tasks owned by a lifespan's exit stack, each watched by readiness."""

    def __init__(self, stack: AsyncExitStack, readiness: Readiness) -> None:
        self._stack = stack
        self._readiness = readiness
        self._stopping: set[asyncio.Task[Any]] = set()

    def spawn(
        self,
        name: str,
        coro: Coroutine[Any, Any, str | None],
        *,
        stop: Callable[[], object] | None = None,
        drain_timeout_s: float = 0.0,
    ) -> asyncio.Task[str | None]:
        """Run ``coro`` as the task ``name`` (also its readiness check name).

        ``stop`` asks the loop to finish on its own; it gets ``drain_timeout_s`` to
        do so before it is cancelled. Without ``stop`` the task is cancelled at once.
        """
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._on_exit)
        self._stack.push_async_callback(self._stop, task, stop, drain_timeout_s)
        return task

    def _on_exit(self, task: asyncio.Task[str | None]) -> None:
        if task.cancelled():
            return
        name = task.get_name()
        error = task.exception()
        if error is not None:
            log.error("%s crashed", name, exc_info=error)
            reason = f"{name} crashed: {type(error).__name__}: {error}"
        elif (result := task.result()) is not None:
            # Stopped on purpose (the dead-letter guard): a restart would only repeat it.
            log.error("%s stopped", name, extra={"reason": result})
            self._readiness.fail(name, result[:300])
            return
        elif task in self._stopping:
            return
        else:
            log.error("%s exited before it was asked to stop", name)
            reason = f"{name} exited before it was asked to stop"
        self._readiness.fail(name, reason[:300], restart=True)

    async def _stop(
        self,
        task: asyncio.Task[str | None],
        stop: Callable[[], object] | None,
        drain_timeout_s: float,
    ) -> None:
        self._stopping.add(task)
        if stop is not None and not task.done():
            stop()
            done, _ = await asyncio.wait({task}, timeout=drain_timeout_s)
            if not done:
                log.warning(
                    "%s did not stop in time; cancelling",
                    task.get_name(),
                    extra={"timeout_s": drain_timeout_s},
                )
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_WAIT_S)
