"""Engine edge cases of structured concurrency: parallel branches that fail, pause, replay
in another order or diverge; map; a cancel while a task runs."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from flux import ExecutionContext, task, workflow
from flux.errors import ExecutionStateError, NonDeterminismError
from flux.local import open_store
from flux.tasks import parallel, pause
from sdk_support import events_of, kinds


def test_parallel_failure_cancels_and_awaits_siblings():
    seen: list[str] = []

    @task
    async def sibling() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # unwinding takes a moment; parallel must wait for it
            seen.append("sibling cancelled")
            raise

    @task
    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("branch failed")

    @workflow
    async def wf(ctx: ExecutionContext):
        try:
            await parallel(sibling(), failing())
        except ValueError as exc:
            seen.append(f"caught {exc}")
            raise

    result = wf.run()

    assert seen == ["sibling cancelled", "caught branch failed"]  # not left to run its course
    assert result.has_failed
    assert str(result.output) == "branch failed"
    order = [(e.type.value, e.name) for e in result.events]
    assert order.index(("TASK_CANCELLED", "sibling")) < order.index(("WORKFLOW_FAILED", "wf"))
    assert kinds(result, "failing") == ["TASK_STARTED", "TASK_FAILED"]


def test_pause_inside_parallel_then_resume():
    runs: list[str] = []

    @task
    async def work(x: int) -> int:
        runs.append(f"work {x}")
        return x * 10

    async def approval() -> Any:
        return await pause("approve")

    @workflow
    async def wf(ctx: ExecutionContext):
        return await parallel(work(1), approval(), work(2))

    paused = wf.run()
    assert paused.is_paused
    assert kinds(paused)[-1] == "WORKFLOW_PAUSED"

    resumed = wf.run({"ok": True}, execution_id=paused.execution_id)
    assert resumed.has_succeeded
    assert resumed.output == [10, {"ok": True}, 20]
    # Branches that completed before the pause did not run again.
    assert {e.value for e in events_of(paused, "TASK_COMPLETED")} == {10, 20}
    assert sorted(runs) == ["work 1", "work 2"]


def test_parallel_branches_may_interleave_differently_on_replay():
    runs: list[str] = []

    @task
    async def fetch(x: int) -> int:
        runs.append(f"fetch {x}")
        await asyncio.sleep(0.01 * (3 - x))  # live, later branches finish first
        return x

    @task
    async def save(x: int) -> int:
        runs.append(f"save {x}")
        return x * 10

    async def process(x: int) -> int:
        return await save(await fetch(x))

    @workflow
    async def wf(ctx: ExecutionContext):
        results = await parallel(*(process(x) for x in range(3)))
        return [results, await pause("p")]

    paused = wf.run()
    assert [e.name for e in events_of(paused, "TASK_STARTED")][-3:-1] == ["save", "save"]

    # On replay every fetch returns at once, so the saves come in another order than live.
    result = wf.run("go", execution_id=paused.execution_id)
    assert result.output == [[0, 10, 20], "go"]
    assert sorted(runs) == sorted(
        [f"fetch {x}" for x in range(3)] + [f"save {x}" for x in range(3)]
    )


def test_divergence_inside_a_parallel_branch_names_the_branch():
    @task
    async def a() -> str:
        return "a"

    @task
    async def b() -> str:
        return "b"

    @workflow.with_options(name="branches")
    async def original(ctx: ExecutionContext):
        await parallel(a(), a())
        return await pause("p")

    @workflow.with_options(name="branches")
    async def changed(ctx: ExecutionContext):
        await parallel(a(), b())
        return await pause("p")

    paused = original.run()
    with pytest.raises(NonDeterminismError, match=r"branch #2 of a parallel call in the workflow"):
        changed.run(execution_id=paused.execution_id)


def test_map_is_parallel_and_keeps_input_order():
    @task
    async def slow_square(x: int) -> int:
        await asyncio.sleep(0.01 * (5 - x))
        return x * x

    @workflow
    async def wf(ctx: ExecutionContext[list[int]]):
        return await slow_square.map(ctx.input)

    assert wf.run([1, 2, 3, 4]).output == [1, 4, 9, 16]


def test_cancel_with_a_failing_rollback_still_ends_cancelled():

    started = threading.Event()
    ids: list[str] = []

    def rollback() -> None:
        raise OSError("rollback broke")

    @task.with_options(rollback=rollback)
    async def long_task() -> None:
        started.set()
        await asyncio.sleep(60)

    @workflow
    async def wf(ctx: ExecutionContext):
        ids.append(ctx.execution_id)
        await long_task()

    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(wf.run()))
    thread.start()
    try:
        assert started.wait(30)
        # Resuming it from another thread while it runs is refused, and writes nothing.

        before = len(open_store().load(ids[0]).ctx.events)
        with pytest.raises(ExecutionStateError, match="running"):
            wf.run(execution_id=ids[0])
        assert len(open_store().load(ids[0]).ctx.events) == before
        workflow.cancel(ids[0])
    finally:
        thread.join(60)
    result = results[0]
    assert result.is_cancelled
    assert kinds(result, "long_task") == [
        "TASK_STARTED",
        "TASK_ROLLBACK_STARTED",
        "TASK_ROLLBACK_FAILED",
        "TASK_CANCELLED",
    ]
