"""The pause contract: ``await pause(name, data=None)``, the waiting pauses an execution lists,
and resumes that name the pause they answer (required only when several wait)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from flux import ExecutionContext, ExecutionState, task, workflow
from flux.domain import EventType, ExecutionEvent
from flux.errors import ExecutionStateError, UsageError
from flux.tasks import parallel, pause
from flux.testing import MemoryStore
from flux.testing import run as run_in_memory
from sdk_support import row_counts

ran: list[str] = []


@task
async def after(label: str, answer: object) -> str:
    ran.append(label)
    return f"{label}={answer}"


async def branch(label: str) -> str:
    answer = await pause(label, data={"ask": f"approve {label}?", "amount": len(label)})
    return await after(label, answer)


@workflow
async def two_approvals(ctx: ExecutionContext[None]) -> list[str]:
    return await parallel(branch("finance"), branch("legal"))


@workflow
async def one_approval(ctx: ExecutionContext[str]) -> str:
    answer = await pause("approve", data={"order": ctx.input})
    return f"{ctx.input}:{answer}"


@pytest.fixture(autouse=True)
def _clear() -> None:
    ran.clear()


def test_two_pauses_waiting_at_once_each_get_their_own_input(db_path):
    first = two_approvals.run()
    assert first.state is ExecutionState.PAUSED
    waiting = first.pauses
    assert [p.name for p in waiting] == ["finance", "legal"]
    assert waiting[0].data == {"ask": "approve finance?", "amount": 7}
    assert all(isinstance(p.paused_at, datetime) for p in waiting)

    # Two wait: a resume must say which it answers, and a refused one writes nothing.
    counts = row_counts(db_path)
    with pytest.raises(ExecutionStateError, match=r"waits at 2 pauses \(finance, legal\)") as info:
        two_approvals.run("yes", execution_id=first.execution_id)
    assert info.value.details["pauses"] == ["finance", "legal"]
    with pytest.raises(ExecutionStateError, match=r"no waiting pause named 'hr'.*finance, legal"):
        two_approvals.run("yes", execution_id=first.execution_id, pause="hr")
    assert row_counts(db_path) == counts

    second = two_approvals.run("approved by L", execution_id=first.execution_id, pause="legal")
    assert second.state is ExecutionState.PAUSED
    assert [p.name for p in second.pauses] == ["finance"]

    # One waits now: the name is optional.
    done = two_approvals.run("approved by F", execution_id=first.execution_id)
    assert done.state is ExecutionState.COMPLETED
    assert done.output == ["finance=approved by F", "legal=approved by L"]
    assert done.pauses == []
    assert sorted(ran) == ["finance", "legal"]  # each branch's next task ran once


def test_one_pause_with_data_resumes_without_naming_it(db_path):
    paused = one_approval.run("order-1")
    [only] = paused.pauses
    assert (only.name, only.data) == ("approve", {"order": "order-1"})
    assert only.to_dict()["paused_at"] == only.paused_at.isoformat()
    done = one_approval.run("ok", execution_id=paused.execution_id)
    assert done.output == "order-1:ok"
    # Naming it works the same, and a finished execution answers with its record.
    assert one_approval.run("x", execution_id=paused.execution_id, pause="approve").output == (
        "order-1:ok"
    )


def test_naming_a_pause_of_an_execution_that_is_not_paused_is_refused(db_path):
    @workflow
    async def crashed(ctx: ExecutionContext[None]) -> str:
        return "done"

    ctx = ExecutionContext("crashed")
    from flux.local import open_store

    store = open_store()
    store.create(ctx)
    store.release(ctx.execution_id)
    with pytest.raises(ExecutionStateError, match="is CREATED, not paused: there is no pause"):
        crashed.run(execution_id=ctx.execution_id, pause="approve")
    assert crashed.run(execution_id=ctx.execution_id).output == "done"


def test_pause_data_must_be_json(db_path):
    @workflow
    async def bad_data(ctx: ExecutionContext[None]) -> None:
        await pause("approve", data={"when": datetime(2024, 1, 1)})

    failed = bad_data.run()
    assert failed.state is ExecutionState.FAILED
    assert isinstance(failed.output, UsageError)
    assert "data must be JSON" in str(failed.output)


def test_to_json_carries_the_whole_context_and_the_waiting_pauses(db_path):
    paused = one_approval.run("order-2")
    data = json.loads(paused.to_json())
    assert data["execution_id"] == paused.execution_id
    assert data["workflow_name"] == "one_approval"
    assert (data["state"], data["input"], data["output"]) == ("PAUSED", "order-2", None)
    assert [p["name"] for p in data["pauses"]] == ["approve"]
    assert [e["type"] for e in data["events"]] == [e.type.value for e in paused.events]
    assert paused.to_dict().keys() == {
        "execution_id",
        "workflow_id",
        "workflow_name",
        "state",
        "input",
        "output",
    }


def test_the_in_memory_runner_follows_the_same_contract():
    store = MemoryStore()
    first = run_in_memory(two_approvals, store=store)
    with pytest.raises(ExecutionStateError, match="name the one this resume answers"):
        run_in_memory(two_approvals, "x", execution_id=first.execution_id, store=store)
    run_in_memory(two_approvals, "F", execution_id=first.execution_id, store=store, pause="finance")
    done = run_in_memory(two_approvals, "L", execution_id=first.execution_id, store=store)
    assert done.output == ["finance=F", "legal=L"]
    again = run_in_memory(two_approvals, "z", execution_id=first.execution_id, store=store)
    assert again is store.executions[first.execution_id]


def test_a_resume_that_names_no_pause_answers_the_waiting_one():
    """Histories written before resumes answered pauses by name (and a parent resumed for a
    paused child) carry a bare WORKFLOW_RESUMED: the pause waiting then takes its input."""
    store = MemoryStore()
    paused = run_in_memory(one_approval, "order-3", store=store)
    ctx = store.executions[paused.execution_id]
    resumed = ExecutionEvent(EventType.WORKFLOW_RESUMED, ctx.execution_id, ctx.workflow_name, "ok")
    store.executions[ctx.execution_id] = ExecutionContext(
        ctx.workflow_name, ctx.input, ctx.execution_id, events=[*ctx.events, resumed]
    )
    done = run_in_memory(one_approval, execution_id=ctx.execution_id, store=store)
    assert done.output == "order-3:ok"
    answers = [e for e in done.events if e.type is EventType.TASK_COMPLETED]
    assert [e.value for e in answers] == ["ok"]
