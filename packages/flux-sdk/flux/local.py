"""Local durable runs: ``workflow.run(...)`` drives an execution in this process over the
SQLite store of configuration (``.flux/flux.db`` by default), with the services tasks use.

A run, a resume and a crash recovery all go through :func:`run_local`: it owns the execution
in the store for as long as it drives it, and releases it at the end, whichever way the run
ends (an interrupted run stays resumable by replay).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from flux._runtime import current_run
from flux.context import ExecutionContext
from flux.domain import FINISHED_STATES, EventType, ExecutionEvent, ExecutionState
from flux.errors import (
    ExecutionError,
    ExecutionNotFoundError,
    ExecutionPaused,
    ExecutionStateError,
    UsageError,
)
from flux.pauses import Pause, choose_pause
from flux.runner import WorkflowRun
from flux.store import LocalMemory, LocalStore

if TYPE_CHECKING:
    from flux.tasks.progress import Progress

__all__ = [
    "CANCEL_POLL_SECONDS",
    "LocalServices",
    "LocalWorkflow",
    "cancel_local",
    "child_outcome",
    "open_store",
    "run_blocking",
    "run_local",
]

T = TypeVar("T")

CANCEL_POLL_SECONDS = 0.2
"""How often a local run checks whether another process asked to cancel it."""


class LocalWorkflow(Protocol):
    """What a local run needs of a workflow object (``flux.workflow.workflow`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def func(self) -> Callable[[ExecutionContext[Any]], Any]:
        """The ``async def`` body: called with the context, it returns a coroutine."""


def open_store() -> LocalStore:
    """The local store named by configuration (``.flux/flux.db`` by default)."""
    from flux.config import Configuration

    settings = Configuration.get().settings
    return LocalStore.open(settings.local_db_path, settings.serializer)


def run_blocking(coro: Coroutine[Any, Any, T], thread_name: str) -> T:
    """Run ``coro`` to the end from synchronous code; inside a running event loop, on a
    helper thread with a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[Any] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # handed back to the caller's thread
            result.append(exc)

    thread = threading.Thread(target=target, name=thread_name)
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]  # type: ignore[no-any-return]


async def run_local(
    wf: LocalWorkflow,
    input: Any = None,
    *,
    execution_id: str | None = None,
    store: LocalStore | None = None,
    pause: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> ExecutionContext[Any]:
    """Start an execution of ``wf``, or continue ``execution_id``, and drive it to its end or
    its next pause. See :meth:`flux.workflow.workflow.run` for the contract."""
    store = store or open_store()
    if execution_id is None:
        ctx: ExecutionContext[Any] = ExecutionContext(wf.name, input)
        store.create(ctx)
        return await _drive(wf, store, ctx, on_progress=on_progress)
    stored = store.load(execution_id)
    ctx = stored.ctx
    if ctx.workflow_name != wf.name:
        raise UsageError(
            f"execution {execution_id!r} belongs to workflow {ctx.workflow_name!r}, not {wf.name!r}"
        )
    if ctx.state in FINISHED_STATES:
        return ctx  # nothing left to run: its recorded outcome
    if ctx.state is not ExecutionState.PAUSED and pause is not None:
        raise ExecutionStateError(
            f"execution {execution_id!r} is {ctx.state.value}, not paused: there is no pause "
            f"{pause!r} to answer",
            execution_id=execution_id,
            state=ctx.state.value,
        )
    answer = None
    resuming = ctx.state is ExecutionState.PAUSED
    if resuming:
        answer = choose_pause(execution_id, ctx.pauses, pause)
    if stored.owner_alive:
        raise ExecutionStateError(
            f"execution {execution_id!r} is running in process {stored.owner_pid}; "
            "wait for it or cancel it",
            execution_id=execution_id,
        )
    store.take_ownership(execution_id, stored.owner_pid)
    return await _drive(
        wf, store, ctx, resume=resuming, input=input, answer=answer, on_progress=on_progress
    )


async def _drive(
    wf: LocalWorkflow,
    store: LocalStore,
    ctx: ExecutionContext[Any],
    *,
    resume: bool = False,
    input: Any = None,
    answer: Pause | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> ExecutionContext[Any]:
    """Run ``ctx``, which this process owns in ``store``, and release it at the end;
    ``resume`` continues a paused one with ``input``, the answer to the pause ``answer``."""
    wf_run = WorkflowRun(wf, ctx, store, LocalServices(store), on_progress)
    if resume:
        wf_run.resume(input, answer)
    watcher = asyncio.get_running_loop().create_task(_watch_cancel(store, ctx.execution_id, wf_run))
    try:
        return await wf_run.execute()
    finally:
        watcher.cancel()
        store.release(ctx.execution_id)


async def _watch_cancel(store: LocalStore, execution_id: str, wf_run: WorkflowRun) -> None:
    """Cancellation requested by another process reaches a local run through the store."""
    while True:
        await asyncio.sleep(CANCEL_POLL_SECONDS)
        if store.cancel_requested(execution_id):
            wf_run.cancel()
            return


def cancel_local(execution_id: str, store: LocalStore | None = None) -> ExecutionContext[Any]:
    """Cancel a local execution from any process (see :meth:`workflow.cancel`)."""
    store = store or open_store()
    stored = store.load(execution_id)
    ctx = stored.ctx
    if ctx.state in FINISHED_STATES:
        raise ExecutionStateError(
            f"execution {execution_id!r} already finished ({ctx.state.value}); nothing to cancel",
            execution_id=execution_id,
            state=ctx.state.value,
        )
    if stored.owner_alive:
        store.request_cancel(execution_id)
        return ctx
    event = ExecutionEvent(EventType.WORKFLOW_CANCELLED, ctx.execution_id, ctx.workflow_name, None)
    ctx.append_event(event)
    store.save(ctx, [event])
    return ctx


class LocalServices:
    """Secrets from the local encrypted store, the cache and memory tables, subworkflows
    in-process."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.memory = LocalMemory(store)

    async def memory_get(self, scope: str, key: str) -> tuple[bool, Any]:
        return self.memory.get(scope, key)

    async def memory_put(self, scope: str, key: str, text: str) -> None:
        self.memory.put(scope, key, text)

    async def memory_delete(self, scope: str, key: str) -> bool:
        return self.memory.delete(scope, key)

    async def memory_items(self, scope: str) -> dict[str, Any]:
        return self.memory.items(scope)

    async def get_secrets(self, names: list[str]) -> dict[str, Any]:
        from flux.config import Configuration
        from flux.secrets import LocalSecretStore

        settings = Configuration.get().settings
        return LocalSecretStore.from_settings(settings).get_many(names)

    def cache_get(self, key: str) -> tuple[bool, Any]:
        return self.store.cache_get(key)

    def cache_put(self, key: str, value: Any) -> None:
        self.store.cache_put(key, value)

    async def call_workflow(self, target: Any, input: Any, execution_id: str) -> Any:
        if isinstance(target, str) or not callable(getattr(target, "func", None)):
            raise UsageError(
                f"a local run can only call workflow objects, not {target!r}; "
                "calling a workflow by name needs a Flux server"
            )
        try:
            stored = self.store.load(execution_id)
        except ExecutionNotFoundError:
            ctx: ExecutionContext[Any] = ExecutionContext(target.name, input, execution_id)
            self.store.create(ctx)
            child = await _drive(target, self.store, ctx)
        else:
            child = stored.ctx
            if not child.has_finished:
                resume = _parent_resume_input(execution_id)
                child = await run_local(target, resume, execution_id=execution_id, store=self.store)
        return child_outcome(child)


def _parent_resume_input(child_id: str) -> Any:
    """What the calling run was resumed with after it paused because this child paused: the
    input a paused child resumes with."""
    run = current_run.get()
    if run is None:
        return None
    reason = f"subworkflow:{child_id}"
    for event in reversed(run.ctx.events):
        if event.type is EventType.WORKFLOW_PAUSED and event.value == reason:
            return run.resume_value_after(event)[1]
    return None


def child_outcome(child: ExecutionContext[Any]) -> Any:
    """The output of a finished child execution, or its failure or pause raised in the parent."""
    if child.has_succeeded:
        return child.output
    if child.has_failed:
        out = child.output
        if isinstance(out, BaseException):
            raise out
        raise ExecutionError(f"subworkflow {child.workflow_name!r} failed: {out!r}")
    if child.is_paused:
        raise ExecutionPaused(f"subworkflow:{child.execution_id}")
    raise ExecutionError(
        f"subworkflow {child.workflow_name!r} ended {child.state.value}",
        execution_id=child.execution_id,
    )
