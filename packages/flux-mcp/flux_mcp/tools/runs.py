"""Tools that start or stop executions: ``execute_workflow_sync``, ``execute_workflow_async``,
``resume_workflow_sync``, ``resume_workflow_async`` and ``cancel_execution``.

The sync tools start (or resume) the execution without waiting, then follow it with
:func:`flux_mcp.follow.follow`, sending a progress notification per state change; after
``sync_wait_seconds`` they answer with the state it is in, never with a timeout.
"""

from __future__ import annotations

from typing import Annotated, Any

from flux.client import AsyncFluxClient
from flux.protocol import EXECUTION_ID_PATTERN, ExecutionStatus
from mcp.server.mcpserver import Context
from pydantic import Field

from flux_mcp.errors import flux_errors
from flux_mcp.follow import Report, follow, last_workflow_position
from flux_mcp.results import ExecutionResult, execution_result
from flux_mcp.tools._box import Toolbox, changes
from flux_mcp.tools.workflows import WorkflowName

__all__ = ["ExecutionId", "register"]

ExecutionId = Annotated[str, Field(min_length=1, description="the execution's id")]
Input = Annotated[
    Any,
    Field(
        description="the workflow's input: any JSON value (object, array, string, number, "
        "boolean or null); a JSON text of an object or array is decoded first"
    ),
]
ResumeInput = Annotated[
    Any, Field(description="the value the pause returns to the workflow: any JSON value")
]
PauseName = Annotated[
    str | None,
    Field(
        min_length=1,
        description="the waiting pause this answers; needed only when several wait",
    ),
]
ChosenId = Annotated[
    str | None,
    Field(
        pattern=EXECUTION_ID_PATTERN,
        description="optional id for the new execution: calling again with the same id "
        "returns that execution instead of starting another",
    ),
]


def _reporter(ctx: Context) -> Report:
    """Progress notifications numbered 1, 2, ... (the protocol wants them increasing)."""
    count = 0

    async def report(message: str) -> None:
        nonlocal count
        count += 1
        await ctx.report_progress(count, None, message)

    return report


def register(box: Toolbox) -> None:
    flux = box.flux
    wait_s = box.config.sync_wait_seconds

    async def execute_workflow_sync(
        workflow_name: WorkflowName,
        ctx: Context,
        input: Input = None,
        execution_id: ChosenId = None,
    ) -> ExecutionResult:
        """Run a workflow and wait for it to finish or pause, with a progress notification
        per state change. If it is still running when the wait limit passes, the answer is
        its current state (RUNNING): then ask again with get_execution_status."""
        report = _reporter(ctx)
        with flux_errors():
            started = await flux.run(workflow_name, input, execution_id=execution_id)
        await report(f"execution {started.execution_id} is {started.state.value}")
        return await _followed(flux, started, wait_s, report, after=None)

    async def execute_workflow_async(
        workflow_name: WorkflowName, input: Input = None, execution_id: ChosenId = None
    ) -> ExecutionResult:
        """Start a workflow and answer at once with the new execution's id; follow it with
        get_execution_status."""
        with flux_errors():
            started = await flux.run(workflow_name, input, execution_id=execution_id)
        return execution_result(started)

    async def resume_workflow_sync(
        execution_id: ExecutionId,
        ctx: Context,
        input: ResumeInput = None,
        pause_name: PauseName = None,
    ) -> ExecutionResult:
        """Resume a PAUSED execution with the input its pause waits for, and wait until it
        finishes or pauses again, with a progress notification per state change."""
        report = _reporter(ctx)
        with flux_errors():
            paused = await flux.get_execution(execution_id)
            after = await last_workflow_position(flux, execution_id)
            resumed = await flux.resume(paused.workflow_name, execution_id, input, pause=pause_name)
        await report(f"execution {execution_id} is {resumed.state.value}")
        return await _followed(flux, resumed, wait_s, report, after=after)

    async def resume_workflow_async(
        execution_id: ExecutionId, input: ResumeInput = None, pause_name: PauseName = None
    ) -> ExecutionResult:
        """Resume a PAUSED execution with the input its pause waits for, and answer at once;
        follow it with get_execution_status."""
        with flux_errors():
            paused = await flux.get_execution(execution_id)
            resumed = await flux.resume(paused.workflow_name, execution_id, input, pause=pause_name)
        return execution_result(resumed)

    async def cancel_execution(
        execution_id: ExecutionId,
        ctx: Context,
        wait: Annotated[
            bool, Field(description="wait until the execution has stopped (CANCELLED)")
        ] = True,
    ) -> ExecutionResult:
        """Cancel an execution that has not finished. Its running tasks are stopped and it
        ends CANCELLED; it cannot be resumed afterwards."""
        with flux_errors():
            status = await flux.get_execution(execution_id)
            cancelled = await flux.cancel(status.workflow_name, execution_id)
        if not wait or cancelled.finished:
            return execution_result(cancelled)
        report = _reporter(ctx)
        await report(f"execution {execution_id} is {cancelled.state.value}")
        context = f"Cancelling execution {execution_id!r} was asked, but following it failed:"
        return await _followed(
            flux, cancelled, wait_s, report, after=None, until_finished=True, context=context
        )

    box.add(
        execute_workflow_sync,
        title="Run a workflow and wait",
        annotations=changes(destructive=False, idempotent=False, runs_code=True),
    )
    box.add(
        execute_workflow_async,
        title="Start a workflow",
        annotations=changes(destructive=False, idempotent=False, runs_code=True),
    )
    box.add(
        resume_workflow_sync,
        title="Resume a paused execution and wait",
        annotations=changes(destructive=False, idempotent=False, runs_code=True),
    )
    box.add(
        resume_workflow_async,
        title="Resume a paused execution",
        annotations=changes(destructive=False, idempotent=False, runs_code=True),
    )
    box.add(
        cancel_execution,
        title="Cancel an execution",
        annotations=changes(destructive=True, idempotent=True),
    )


async def _followed(
    flux: AsyncFluxClient,
    start: ExecutionStatus,
    wait: float,
    report: Report,
    *,
    after: int | None,
    until_finished: bool = False,
    context: str = "",
) -> ExecutionResult:
    """Follow the execution ``start`` answered for (see :func:`follow`) and answer with its
    state then: from its finishing frame when the stream brought one, read otherwise. A failure
    after it started says so, with its id, so the model can look it up later."""
    execution_id = start.execution_id
    context = context or f"Execution {execution_id!r} was started, but following it failed:"
    with flux_errors(context):
        followed = await follow(
            flux, execution_id, wait=wait, report=report, after=after, until_finished=until_finished
        )
        status = followed.status(start) or await flux.get_execution(execution_id)
    if followed.stopped:
        return execution_result(status)
    return execution_result(status, note=f"Not finished after {wait:g} s of waiting.")
