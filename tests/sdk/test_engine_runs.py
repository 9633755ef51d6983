"""Engine edge cases of a run as a whole: values that cannot be stored, runs inside an
event loop, and the state that lives with one run."""

from __future__ import annotations

import threading
from typing import Any

from flux import ExecutionContext, task, workflow
from flux.domain import EventType
from flux.errors import SerializationError
from flux.local import open_store


def test_unstorable_task_result_fails_the_workflow():

    @task
    async def make_lock() -> Any:
        return threading.Lock()

    @workflow
    async def wf(ctx: ExecutionContext):
        await make_lock()

    result = wf.run()
    assert result.has_failed
    assert isinstance(result.output, SerializationError)
    assert "'lock'" in str(result.output)
    assert open_store().load(result.execution_id).ctx.has_failed


def test_unstorable_workflow_output_fails_the_execution_instead_of_leaving_it_running():

    @workflow
    async def wf(ctx: ExecutionContext):
        return threading.Lock()

    result = wf.run()
    assert result.has_failed
    assert isinstance(result.output, SerializationError)
    stored = open_store().load(result.execution_id).ctx
    assert stored.has_failed
    assert (
        [e.type for e in stored.events]
        == [e.type for e in result.events]
        == [
            EventType.WORKFLOW_STARTED,
            EventType.WORKFLOW_FAILED,
        ]
    )


async def test_run_inside_an_event_loop_and_arun():
    @task
    async def double(x: int) -> int:
        return x * 2

    @workflow
    async def wf(ctx: ExecutionContext[int]):
        return await double(ctx.input)

    assert wf.run(2).output == 4  # on a helper thread: the caller's loop is busy
    assert (await wf.arun(3)).output == 6


def test_run_state_lives_with_the_run_and_starts_empty_on_replay():
    from flux.context import run_state
    from flux.tasks import parallel, pause
    from flux.testing import MemoryStore, run

    @task
    async def note(word: str) -> str:
        return word

    seen: list[list[str]] = []

    async def branch(word: str) -> None:
        state = run_state()
        state.setdefault("words", []).append(await note(word))

    @workflow
    async def stateful(ctx: ExecutionContext[None]):
        await parallel(branch("a"), branch("b"))
        seen.append(sorted(run_state()["words"]))
        await pause("wait")
        return sorted(run_state()["words"])

    assert run_state() is None  # outside a workflow
    store = MemoryStore()
    paused = run(stateful, store=store)
    done = run(stateful, "go", execution_id=paused.execution_id, store=store)

    assert done.output == ["a", "b"]  # rebuilt by the replay, not carried over
    assert seen == [["a", "b"], ["a", "b"]]
