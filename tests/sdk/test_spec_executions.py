"""The spec's state inspection and cancellation (flux-core 0.18 README): their SDK code
blocks, run with asserted results."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from flux import ExecutionContext, task, workflow
from flux.local import open_store
from flux.tasks import pause
from sdk_support import kinds

# -- State inspection -----------------------------------------------------------------------------


def test_state_inspection_properties_and_events():
    @task
    async def step(x: int) -> int:
        return x + 1

    @task
    async def boom() -> None:
        raise ValueError("bad value")

    @workflow
    async def ok_wf(ctx: ExecutionContext[int]):
        return await step(ctx.input)

    @workflow
    async def failing_wf(ctx: ExecutionContext):
        await boom()

    @workflow
    async def pausing_wf(ctx: ExecutionContext):
        return await pause("gate")

    def flags(ctx: ExecutionContext[Any]) -> tuple[bool, ...]:
        return (
            ctx.has_finished,
            ctx.has_succeeded,
            ctx.has_failed,
            ctx.is_cancelled,
            ctx.is_paused,
        )

    ok = ok_wf.run(1)
    assert flags(ok) == (True, True, False, False, False)
    assert [(e.type.value, e.name, e.value) for e in ok.events] == [
        ("WORKFLOW_STARTED", "ok_wf", 1),
        ("TASK_STARTED", "step", [1]),
        ("TASK_COMPLETED", "step", 2),
        ("WORKFLOW_COMPLETED", "ok_wf", 2),
    ]
    times = [e.time for e in ok.events]
    assert times == sorted(times)
    assert all(t.tzinfo is not None for t in times)

    failed = failing_wf.run()
    assert flags(failed) == (True, False, True, False, False)
    assert isinstance(failed.output, ValueError)
    assert str(failed.output) == "bad value"

    paused = pausing_wf.run()
    assert flags(paused) == (False, False, False, False, True)

    cancelled = workflow.cancel(paused.execution_id)
    assert flags(cancelled) == (True, False, False, True, False)

    # The spec's "State Management" form: run(execution_id=...) on a finished execution
    # returns its recorded context (state, output, events) without running anything.
    again = ok_wf.run(execution_id=ok.execution_id)
    assert (again.state, again.output) == (ok.state, ok.output)
    assert [e.id for e in again.events] == [e.id for e in ok.events]

    # A stored execution reads back with the same state and events.

    stored = open_store().load(ok.execution_id).ctx
    assert stored.state == ok.state
    assert [(e.id, e.type, e.value) for e in stored.events] == [
        (e.id, e.type, e.value) for e in ok.events
    ]


# -- Cancellation ---------------------------------------------------------------------------------


def test_cancellation_runs_cleanup_and_rollback(tmp_path):
    started = threading.Event()
    ids: list[str] = []
    log: list[str] = []

    async def undo():
        log.append("rollback")

    @task.with_options(rollback=undo)
    async def long_running_task():
        started.set()
        await asyncio.sleep(60)
        log.append("finished")  # never reached

    @task
    async def cleanup():
        log.append("cleanup")

    @workflow
    async def cancellable_workflow(ctx: ExecutionContext):
        ids.append(ctx.execution_id)
        try:
            await long_running_task()
            return "completed"
        except asyncio.CancelledError:
            await cleanup()
            raise

    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(cancellable_workflow.run()))
    thread.start()
    try:
        assert started.wait(30), "the long task did not start"
        cancelled = workflow.cancel(ids[0])
        assert cancelled.execution_id == ids[0]
    finally:
        thread.join(60)
    assert not thread.is_alive()

    result = results[0]
    assert result.is_cancelled
    assert result.has_finished and not result.has_failed
    assert log == ["rollback", "cleanup"]
    assert kinds(result, "long_running_task") == [
        "TASK_STARTED",
        "TASK_ROLLBACK_STARTED",
        "TASK_ROLLBACK_COMPLETED",
        "TASK_CANCELLED",
    ]
    assert kinds(result)[-1] == "WORKFLOW_CANCELLED"

    assert open_store().load(ids[0]).ctx.is_cancelled
