"""The state of one execution while its workflow body runs in this process.

A run, a resume and a crash recovery all re-run the body from the top. Each task call asks
:meth:`Run.identify` for its identity, then looks itself up in the recorded history: a finished
call returns (or re-raises) the recorded outcome, an unfinished one runs again from where it
stopped. Calls are checked against the recorded order per scope (the task whose body made the
call), so that branches of ``parallel`` may interleave differently on replay without tripping
the determinism check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from flux._identity import call_digest
from flux.domain import WORKFLOW_EVENTS, EventType, ExecutionEvent
from flux.errors import NonDeterminismError
from flux.pauses import PAUSE_TASK, Pause

if TYPE_CHECKING:
    from flux.context import ExecutionContext

TERMINAL_TASK_EVENTS = frozenset(
    {
        EventType.TASK_COMPLETED,
        EventType.TASK_FALLBACK_COMPLETED,
        EventType.TASK_FAILED,
    }
)
SUCCESS_TASK_EVENTS = frozenset({EventType.TASK_COMPLETED, EventType.TASK_FALLBACK_COMPLETED})

current_run: ContextVar[Run | None] = ContextVar("flux_current_run", default=None)
current_scope: ContextVar[str] = ContextVar("flux_current_scope", default="")


class Checkpointer(Protocol):
    """Where a run's new events go. Local runs commit to SQLite; workers send to a server."""

    def save(self, ctx: ExecutionContext[Any], events: list[ExecutionEvent]) -> None:
        """Persist or enqueue ``events``; called in order, never concurrently."""

    async def flush(self) -> None:
        """Return once everything saved so far is durable. Checkpointers whose ``save`` is
        already durable (the local store) set ``durable_on_save = True`` and are not asked;
        the others are asked before the run's next side effect (see :meth:`Run.settle`)."""

    async def finish(self, ctx: ExecutionContext[Any]) -> None:
        """Return once everything saved so far is durable (the run has ended or paused)."""


class Services(Protocol):
    """What tasks need from the environment the run lives in."""

    async def get_secrets(self, names: list[str]) -> dict[str, Any]: ...

    def cache_get(self, key: str) -> tuple[bool, Any]: ...

    def cache_put(self, key: str, value: Any) -> None: ...

    async def call_workflow(self, target: Any, input: Any, execution_id: str) -> Any: ...

    # Long-term memory (flux.memory): JSON values by scope and key, ``text`` already JSON.
    async def memory_get(self, scope: str, key: str) -> tuple[bool, Any]: ...

    async def memory_put(self, scope: str, key: str, text: str) -> None: ...

    async def memory_delete(self, scope: str, key: str) -> bool: ...

    async def memory_items(self, scope: str) -> dict[str, Any]: ...


class Run:
    __slots__ = (
        "_abandoned",
        "_durable_on_save",
        "_group",
        "_group_error",
        "branches",
        "cancelling",
        "checkpointer",
        "commits",
        "counters",
        "ctx",
        "cursors",
        "diverged",
        "extras",
        "history",
        "on_progress",
        "order",
        "pending",
        "services",
        "settled",
        "terminal",
    )

    def __init__(
        self,
        ctx: ExecutionContext[Any],
        checkpointer: Checkpointer,
        services: Services | None = None,
    ) -> None:
        self.ctx = ctx
        self.checkpointer = checkpointer
        self.services = services
        self.history: dict[str, list[ExecutionEvent]] = {}
        self.terminal: dict[str, ExecutionEvent] = {}
        self.order: dict[str, list[str]] = {}
        history, order, terminal = self.history, self.order, self.terminal
        started = EventType.TASK_STARTED
        for event in ctx.events:  # the hot loop of a long replay: locals, no method calls
            kind = event.type
            if kind in WORKFLOW_EVENTS:
                continue
            source_id = event.source_id
            same = history.get(source_id)
            if same is None:
                history[source_id] = [event]
            else:
                same.append(event)
            if kind is started:
                calls = order.get(event.scope)
                if calls is None:
                    order[event.scope] = [source_id]
                else:
                    calls.append(source_id)
            elif kind in TERMINAL_TASK_EVENTS:
                terminal[source_id] = event
        self.cursors: dict[str, int] = {}
        self.counters: dict[str, int] = {}
        self.pending: list[ExecutionEvent] = []
        self.branches = 0
        self.cancelling = False
        # Set once replay found a divergent body: from then on nothing more is recorded, and
        # the run ends with this error however the body handles it.
        self.diverged: NonDeterminismError | None = None
        self.extras: dict[str, Any] = {}  # see flux.context.run_state
        self.on_progress: Callable[[Any], Any] | None = None  # see flux.tasks.progress
        self._abandoned = False
        self._group = False
        self._group_error: BaseException | None = None
        self._durable_on_save = bool(
            getattr(checkpointer, "durable_on_save", not hasattr(checkpointer, "flush"))
        )
        # Completions handed to a checkpointer that is not durable on save, and how many of
        # them are known durable: ``settle`` waits when the second lags the first.
        self.commits = 0
        self.settled = 0

    # -- identity and the determinism check -------------------------------------------------

    def identify(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str]:
        """The identity of this call and the scope it was made in."""
        scope = current_scope.get()
        digest = call_digest(scope, name, args, kwargs)
        n = self.counters.get(digest, 0)
        self.counters[digest] = n + 1
        source_id = f"{name}:{digest}:{n}"
        k = self.cursors.get(scope, 0)
        self.cursors[scope] = k + 1
        recorded = self.order.get(scope)
        if recorded is not None and k < len(recorded) and recorded[k] != source_id:
            self._diverged(scope, k, recorded[k], name, source_id)
        return source_id, scope

    def _diverged(self, scope: str, k: int, expected: str, name: str, got: str) -> None:
        expected_name = expected.split(":", 1)[0]
        where = _describe_scope(scope)
        if expected_name == name:
            what = f"called {name!r} with arguments that differ from the recorded call"
        else:
            what = f"called {name!r} where the history has {expected_name!r}"
        self.pending.clear()
        self.diverged = NonDeterminismError(
            f"workflow {self.ctx.workflow_name!r} (execution {self.ctx.execution_id}) diverged "
            f"from its history at call #{k + 1} {where}: the code {what}. Restore the code the "
            "execution started with, or start a new execution.",
            execution_id=self.ctx.execution_id,
            position=k + 1,
            expected=expected,
            actual=got,
        )
        raise self.diverged

    # -- the log -------------------------------------------------------------------------------

    def emit(
        self, type: EventType, source_id: str, name: str, value: Any = None, scope: str = ""
    ) -> ExecutionEvent:
        event = ExecutionEvent(type, source_id, name, value, scope=scope)
        self.ctx.append_event(event)
        self.pending.append(event)
        return event

    def write(self) -> None:
        """Hand every pending event to the checkpointer now."""
        if self.diverged is not None or self._abandoned:
            self.pending.clear()
            return
        if self.pending:
            events, self.pending = self.pending, []
            self.checkpointer.save(self.ctx, events)

    def abandon(self) -> None:
        """Record nothing more: the run stops as a crash would stop it, leaving the execution
        to be resumed by replay."""
        self._abandoned = True
        self.pending.clear()

    async def commit(self) -> None:
        """Hand a completion (and what was pending before it) to the checkpointer.

        Sequential code writes at once. While parallel branches run, completions that land in
        the same loop iteration share one write (group commit): the first schedules the
        write, and every completer yields once. The loop runs callbacks in FIFO order, so
        the write has happened by the time any of them continues.

        A checkpointer that is not durable on save (a worker's, sending to the server) is not
        waited for here but in :meth:`settle`, before the next side effect: the completion
        and whatever the body records up to then travel together.
        """
        if not self.pending:
            return
        if self.branches <= 1:
            self.write()
        else:
            if not self._group:
                self._group = True
                asyncio.get_running_loop().call_soon(self._write_group)
            await asyncio.sleep(0)
            if self._group_error is not None:
                raise self._group_error
        if not self._durable_on_save:
            self.commits += 1

    async def settle(self) -> None:
        """Wait until every completion committed so far is durable.

        Awaited before anything with effects outside the run starts (a task body, a child
        workflow): a finished task is never run again after a crash of this process, yet a
        workflow pays one acknowledgement per side effect rather than one per event.
        """
        target = self.commits
        if self.settled < target:
            await self.checkpointer.flush()
            self.settled = max(self.settled, target)

    def _write_group(self) -> None:
        self._group = False
        try:
            self.write()
        except BaseException as exc:  # every waiter of this group re-raises it
            self._group_error = exc

    def resume_value_after(self, event: ExecutionEvent) -> tuple[bool, Any]:
        """The input of the first resume logged after ``event`` that answered no pause by
        name (a resume that answers one records that pause's completion just before its
        ``WORKFLOW_RESUMED``), if any."""
        events = self.ctx.events
        seen = False
        previous: ExecutionEvent | None = None
        for e in events:
            if e is event:
                seen = True
            elif seen and e.type is EventType.WORKFLOW_RESUMED and not _answers_pause(previous):
                return True, e.value
            previous = e
        return False, None

    def answer_pause(self, pause: Pause, value: Any) -> None:
        """Record ``value`` as the answer to ``pause`` (a resume that names it)."""
        event = self.emit(EventType.TASK_COMPLETED, pause.source_id, PAUSE_TASK, value, pause.scope)
        self.history.setdefault(pause.source_id, []).append(event)
        self.terminal[pause.source_id] = event


def _answers_pause(event: ExecutionEvent | None) -> bool:
    return event is not None and event.type is EventType.TASK_COMPLETED and event.name == PAUSE_TASK


def _describe_scope(scope: str) -> str:
    if not scope:
        return "in the workflow body"
    if scope.endswith("]"):  # branch i of a parallel call: "<parent scope>[i]"
        parent, _, index = scope[:-1].rpartition("[")
        return f"in branch #{int(index) + 1} of a parallel call {_describe_scope(parent)}"
    return f"inside task {scope.split(':', 1)[0]!r}"


def require_run(what: str) -> Run:
    run = current_run.get()
    if run is None:
        from flux.errors import UsageError

        raise UsageError(f"{what} can only be awaited inside a running workflow")
    return run


def call_plain(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``fn`` with as many of the task's arguments as its signature takes."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn(*args, **kwargs)
    try:
        sig.bind(*args, **kwargs)
    except TypeError:
        if not sig.parameters:
            return fn()
        raise
    return fn(*args, **kwargs)
