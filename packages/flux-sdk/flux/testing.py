"""Helpers for testing your own workflows: in-memory runs and a virtual clock.

```python
from flux.testing import MemoryStore, VirtualClock, run

clock = VirtualClock()
ctx = run(my_workflow, "input", clock=clock)        # sleeps and retry delays take no time
ctx = run(my_workflow, "yes", execution_id=ctx.execution_id, store=store)  # resume a pause
```

Nothing touches the disk: the event log, the task cache and secrets live in a
:class:`MemoryStore`, which also lets a test inspect exactly what was recorded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flux._clock import Clock, current_clock
from flux.context import ExecutionContext
from flux.domain import FINISHED_STATES, ExecutionEvent, ExecutionState
from flux.errors import ExecutionNotFoundError, SecretNotFoundError
from flux.pauses import choose_pause
from flux.runner import WorkflowRun
from flux.workflow import workflow

if TYPE_CHECKING:
    from flux.tasks.progress import Progress

__all__ = ["MemoryStore", "VirtualClock", "arun", "run"]

_ABSENT = object()


class VirtualClock(Clock):
    """Time that moves only when the code sleeps (or a test calls :meth:`advance`)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2025, 1, 1, tzinfo=UTC)
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


class MemoryStore:
    """An in-memory checkpointer and service provider for :func:`run`."""

    durable_on_save = True

    def __init__(self, secrets: dict[str, Any] | None = None) -> None:
        self.executions: dict[str, ExecutionContext[Any]] = {}
        self.saves: list[list[ExecutionEvent]] = []
        self.cache: dict[str, Any] = {}
        self.secrets = dict(secrets or {})
        self.memory: dict[tuple[str, str], Any] = {}
        """Long-term memory (:mod:`flux.memory`) by (scope, key)."""

    def events(self, execution_id: str) -> list[ExecutionEvent]:
        return list(self.executions[execution_id].events)

    # -- Checkpointer --------------------------------------------------------------------------

    def save(self, ctx: ExecutionContext[Any], events: list[ExecutionEvent]) -> None:
        self.executions[ctx.execution_id] = ctx
        self.saves.append(list(events))

    async def flush(self) -> None:
        """Nothing to wait for."""

    async def finish(self, ctx: ExecutionContext[Any]) -> None:
        """Nothing to wait for."""

    # -- Services ------------------------------------------------------------------------------

    async def get_secrets(self, names: list[str]) -> dict[str, Any]:
        missing = [n for n in names if n not in self.secrets]
        if missing:
            raise SecretNotFoundError(f"secrets not found: {', '.join(missing)}", names=missing)
        return {n: self.secrets[n] for n in names}

    def cache_get(self, key: str) -> tuple[bool, Any]:
        return (True, self.cache[key]) if key in self.cache else (False, None)

    def cache_put(self, key: str, value: Any) -> None:
        self.cache[key] = value

    async def memory_get(self, scope: str, key: str) -> tuple[bool, Any]:
        found = (scope, key) in self.memory
        return found, self.memory.get((scope, key))

    async def memory_put(self, scope: str, key: str, text: str) -> None:
        self.memory[scope, key] = json.loads(text)

    async def memory_delete(self, scope: str, key: str) -> bool:
        return self.memory.pop((scope, key), _ABSENT) is not _ABSENT

    async def memory_items(self, scope: str) -> dict[str, Any]:
        return {k: v for (s, k), v in sorted(self.memory.items()) if s == scope}

    async def call_workflow(self, target: Any, input: Any, execution_id: str) -> Any:
        from flux.local import child_outcome

        existing = self.executions.get(execution_id)
        if existing is not None and existing.has_finished:
            return child_outcome(existing)
        child = await arun(
            target,
            input,
            execution_id=execution_id if existing is not None else None,
            store=self,
            _new_id=execution_id,
        )
        return child_outcome(child)


async def arun(
    wf: workflow[Any, Any],
    input: Any = None,
    *,
    execution_id: str | None = None,
    store: MemoryStore | None = None,
    clock: Clock | None = None,
    pause: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    _new_id: str | None = None,
) -> ExecutionContext[Any]:
    """Run ``wf`` in memory; with ``execution_id``, continue that execution of ``store`` as
    :meth:`flux.workflow.workflow.run` does (``pause`` names the pause a resume answers,
    ``on_progress`` gets what its tasks publish)."""
    store = store if store is not None else MemoryStore()
    resuming, answer = False, None
    if execution_id is None:
        ctx: ExecutionContext[Any] = ExecutionContext(wf.name, input, _new_id)
        store.executions[ctx.execution_id] = ctx
    else:
        found = store.executions.get(execution_id)
        if found is None:
            raise ExecutionNotFoundError(f"no execution with id {execution_id!r} in this store")
        if found.state in FINISHED_STATES:
            return found
        ctx = ExecutionContext(
            found.workflow_name, found.input, execution_id, events=list(found.events)
        )
        resuming = ctx.state is ExecutionState.PAUSED
        if resuming:
            answer = choose_pause(execution_id, ctx.pauses, pause)
    token = current_clock.set(clock) if clock is not None else None
    try:
        wf_run = WorkflowRun(wf, ctx, store, store, on_progress)
        if resuming:
            wf_run.resume(input, answer)
        return await wf_run.execute()
    finally:
        if token is not None:
            current_clock.reset(token)


def run(
    wf: workflow[Any, Any],
    input: Any = None,
    *,
    execution_id: str | None = None,
    store: MemoryStore | None = None,
    clock: Clock | None = None,
    pause: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> ExecutionContext[Any]:
    """The synchronous form of :func:`arun`."""
    coro = arun(
        wf,
        input,
        execution_id=execution_id,
        store=store,
        clock=clock,
        pause=pause,
        on_progress=on_progress,
    )
    return asyncio.run(coro)
