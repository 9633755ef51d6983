"""Running one execution of a workflow body: the same code for local runs and for workers."""

from __future__ import annotations

import asyncio
import contextvars
from typing import TYPE_CHECKING, Any

from flux._runtime import Checkpointer, Run, Services, current_run
from flux.domain import EventType
from flux.errors import ExecutionPaused, NonDeterminismError, SerializationError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from flux.context import ExecutionContext
    from flux.local import LocalWorkflow
    from flux.pauses import Pause
    from flux.tasks.progress import Progress

__all__ = ["WorkflowRun"]


class WorkflowRun:
    """Drive ``wf`` over ``ctx`` (a new execution, or one with a recorded history).
    ``on_progress`` receives what its tasks publish with :func:`flux.tasks.progress` (the
    task waits for what it returns, if anything).

    ``execute()`` returns the context once the run completed, failed, paused or was
    cancelled, after the checkpointer made every event durable. ``cancel()`` asks the body
    to unwind: the running task is rolled back and the execution ends CANCELLED.
    A :class:`NonDeterminismError` propagates to the caller and nothing more is recorded,
    so the execution can continue once the original code is back.
    """

    def __init__(
        self,
        wf: LocalWorkflow,
        ctx: ExecutionContext[Any],
        checkpointer: Checkpointer,
        services: Services | None = None,
        on_progress: Callable[[Progress], Awaitable[None] | None] | None = None,
    ) -> None:
        self.workflow = wf
        self.ctx = ctx
        self.run = Run(ctx, checkpointer, services)
        self.run.on_progress = on_progress
        self._body: asyncio.Task[Any] | None = None
        self._cancel_requested = False

    def resume(self, input: Any, pause: Pause | None) -> None:
        """Record a resume of the paused execution with ``input``, the answer to ``pause``
        (None when no pause waits). It is written with the run's first events, so a run that
        stops at once (a NonDeterminismError) leaves the execution paused, its input unused."""
        ctx = self.ctx
        if pause is not None:
            self.run.answer_pause(pause, input)
        self.run.emit(EventType.WORKFLOW_RESUMED, ctx.execution_id, ctx.workflow_name, input)

    def cancel(self) -> None:
        self._cancel_requested = True
        self.run.cancelling = True
        if self._body is not None and not self._body.done():
            self._body.cancel()

    async def execute(self) -> ExecutionContext[Any]:
        run, ctx = self.run, self.ctx
        context = contextvars.copy_context()
        context.run(current_run.set, run)
        if not any(e.type is EventType.WORKFLOW_STARTED for e in ctx.events):
            run.emit(EventType.WORKFLOW_STARTED, ctx.execution_id, ctx.workflow_name, ctx.input)
            run.write()
        body = asyncio.get_running_loop().create_task(self.workflow.func(ctx), context=context)
        self._body = body
        if self._cancel_requested:
            body.cancel()
        try:
            output = await asyncio.shield(body)
        except asyncio.CancelledError:
            if not body.done():
                # The caller of execute() was cancelled (Ctrl-C, a worker letting the run
                # go): the body stops as if the process had died, recording nothing, so the
                # execution stays resumable. Only cancel() cancels the execution.
                run.abandon()
                body.cancel()
                await asyncio.wait([body])
                raise
            if not body.cancelled():
                raise
            self._record_cancelled()
        except ExecutionPaused as paused:
            run.emit(EventType.WORKFLOW_PAUSED, ctx.execution_id, ctx.workflow_name, paused.name)
        except NonDeterminismError:
            run.pending.clear()
            raise
        except Exception as exc:
            run.emit(EventType.WORKFLOW_FAILED, ctx.execution_id, ctx.workflow_name, exc)
        else:
            if self._cancel_requested:
                self._record_cancelled()
            else:
                run.emit(EventType.WORKFLOW_COMPLETED, ctx.execution_id, ctx.workflow_name, output)
        if run.diverged is not None:  # the body caught it: the run still must not go on
            run.pending.clear()
            raise run.diverged
        saved = len(ctx.events) - len(run.pending)
        try:
            run.write()
        except SerializationError as exc:
            # The outcome cannot be stored (an unpicklable output): rather than leave the
            # execution running forever, it fails with that error.
            del ctx.events[saved:]
            run.emit(EventType.WORKFLOW_FAILED, ctx.execution_id, ctx.workflow_name, exc)
            run.write()
        await run.checkpointer.finish(ctx)
        return ctx

    def _record_cancelled(self) -> None:
        ctx = self.ctx
        self.run.emit(EventType.WORKFLOW_CANCELLED, ctx.execution_id, ctx.workflow_name, None)
