"""Engine subworkflows: awaited or called, replayed, paused, failing, and misused."""

from __future__ import annotations

import pytest
from flux import ExecutionContext, task, workflow
from flux.errors import UsageError
from flux.local import open_store
from flux.tasks import call, pause
from sdk_support import events_of, kinds


def test_subworkflow_by_await_and_by_call_and_replay_does_not_rerun_the_child():
    child_runs: list[str] = []

    @task
    async def shout(text: str) -> str:
        return text.upper()

    @workflow
    async def child(ctx: ExecutionContext[str]):
        child_runs.append(ctx.input)
        return await shout(ctx.input)

    @workflow
    async def parent(ctx: ExecutionContext[str]):
        first = await child(ctx.input)
        second = await call(child, ctx.input + "!")
        answer = await pause("gate")
        return [first, second, answer]

    paused = parent.run("hi")
    assert paused.is_paused
    assert child_runs == ["hi", "hi!"]
    calls = events_of(paused, "TASK_COMPLETED")
    assert [e.name for e in calls] == ["call:child", "call:child"]
    child_ids = [
        e.value["execution_id"] for e in events_of(paused, "TASK_STARTED") if e.name == "call:child"
    ]
    store = open_store()
    assert [store.load(cid).ctx.output for cid in child_ids] == ["HI", "HI!"]
    assert all(store.load(cid).ctx.has_succeeded for cid in child_ids)

    result = parent.run("done", execution_id=paused.execution_id)
    assert result.output == ["HI", "HI!", "done"]
    assert child_runs == ["hi", "hi!"]  # the replay did not run the children again


def test_a_paused_subworkflow_resumes_with_the_parent_resume_input():
    @workflow
    async def approver(ctx: ExecutionContext[str]):
        decision = await pause("approve")
        return f"{ctx.input}: {decision}"

    @workflow
    async def requester(ctx: ExecutionContext[str]):
        return await approver(ctx.input)

    paused = requester.run("invoice 7")
    assert paused.is_paused
    assert events_of(paused, "WORKFLOW_PAUSED")[0].value.startswith("subworkflow:")

    result = requester.run("approved", execution_id=paused.execution_id)
    assert result.output == "invoice 7: approved"
    child_id = events_of(result, "TASK_STARTED")[0].value["execution_id"]
    assert open_store().load(child_id).ctx.output == "invoice 7: approved"


def test_subworkflow_failure_propagates_with_its_type():
    @workflow
    async def child(ctx: ExecutionContext):
        raise ArithmeticError("child broke")

    @workflow
    async def parent(ctx: ExecutionContext):
        try:
            await child()
        except ArithmeticError as exc:
            return f"parent saw {exc}"

    result = parent.run()
    assert result.output == "parent saw child broke"
    assert kinds(result, "call:child") == ["TASK_STARTED", "TASK_FAILED"]


def test_awaiting_a_workflow_outside_a_workflow_is_a_usage_error():

    @workflow
    async def lonely(ctx: ExecutionContext):
        return 1

    with pytest.raises(UsageError, match=r"lonely\.run\(input\)"):
        lonely()
