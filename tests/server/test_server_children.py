"""A parent paused by its subworkflow goes on by itself once that child has finished: the
server resumes it in the transaction that finishes the child (or, on PostgreSQL's one-statement
checkpoint, right after it), and also when the child had finished before the parent's pause
was recorded. A parent with a pause of its own waiting is left to the person who answers it.
A parent left paused by a server that ended between the two transactions is found later."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flux.domain import EventType, ExecutionState
from flux.errors import ExecutionStateError
from flux_server.liveness import Liveness
from server_support import pause_events, record


async def _child_of(server, parent_id: str, child_id: str) -> None:
    """Start ``hello`` as a child of ``parent_id``, as a worker's subworkflow call does."""
    answer = await server.http.post(
        "/workflows/hello/run/async",
        params={"execution_id": child_id, "parent": parent_id},
        json="child",
    )
    assert answer.status_code == 200, answer.text


async def _running_parent(server, worker, execution_id: str | None = None):
    """A ``hello`` execution (with the id given, if one is) claimed by ``worker`` and started:
    the parent of the tests."""
    run = await server.client.run("hello", "parent", execution_id=execution_id)
    parent = await worker.take()
    await worker.checkpoint(
        parent.execution_id, parent.generation, [record(EventType.WORKFLOW_STARTED)]
    )
    return run, parent


async def _paused_child(server, worker, parent_id: str, child_id: str) -> None:
    """Start ``child_id`` as a child of ``parent_id``; it runs and pauses at ``answer``."""
    await _child_of(server, parent_id, child_id)
    child = await worker.take()
    await worker.checkpoint(
        child.execution_id,
        child.generation,
        [
            record(EventType.WORKFLOW_STARTED),
            *pause_events("answer", "pause:a:0"),
            record(EventType.WORKFLOW_PAUSED, "answer"),
        ],
    )


async def _paused_by_child(server, worker):
    """A parent that started child ``kid`` and paused with it (the child paused first)."""
    run, parent = await _running_parent(server, worker)
    await _paused_child(server, worker, run.execution_id, "kid")
    await worker.checkpoint(
        parent.execution_id, parent.generation, [record(EventType.WORKFLOW_PAUSED)]
    )
    return run.execution_id


async def _state(server, execution_id: str) -> ExecutionState:
    return (await server.client.get_execution(execution_id)).state


async def test_a_parent_paused_by_its_child_goes_on_when_the_child_finishes(server) -> None:
    await server.register()
    worker = await server.worker(capacity=8)
    parent_id = await _paused_by_child(server, worker)
    assert await _state(server, parent_id) == ExecutionState.PAUSED  # its child still waits

    await server.client.resume("hello", "kid", "yes")
    child = await worker.take()
    await worker.finish(child, "done")
    offer = await worker.next_offer()  # the parent, queued again by the server
    assert offer.execution_id == parent_id
    detail = await server.client.status("hello", parent_id, detailed=True)
    assert [e.type for e in detail.events or []][-1] == EventType.WORKFLOW_RESUMED


async def test_a_cancelled_child_lets_its_parent_go_on_too(server) -> None:
    await server.register()
    worker = await server.worker(capacity=8)
    parent_id = await _paused_by_child(server, worker)
    await server.client.cancel("hello", "kid")
    assert (await worker.next_offer()).execution_id == parent_id


async def test_a_child_finished_before_its_parents_pause_resumes_it_at_once(server) -> None:
    await server.register()
    worker = await server.worker(capacity=8)
    run, parent = await _running_parent(server, worker)
    await _child_of(server, run.execution_id, "quick")
    await worker.finish(await worker.take(), "done")  # before the parent's pause is recorded
    await worker.checkpoint(
        parent.execution_id, parent.generation, [record(EventType.WORKFLOW_PAUSED)]
    )
    assert await _state(server, run.execution_id) in (
        ExecutionState.SCHEDULED,
        ExecutionState.CLAIMED,
    )


async def test_a_parent_with_a_pause_of_its_own_waits_for_its_answer(server) -> None:
    await server.register()
    worker = await server.worker(capacity=8)
    run, parent = await _running_parent(server, worker)
    await _child_of(server, run.execution_id, "side")
    await worker.finish(await worker.take(), "done")
    await worker.checkpoint(
        parent.execution_id,
        parent.generation,
        [*pause_events("approve", "pause:p:0"), record(EventType.WORKFLOW_PAUSED, "approve")],
    )
    status = await server.client.status("hello", run.execution_id)
    assert status.state == ExecutionState.PAUSED
    assert [p.name for p in status.pauses] == ["approve"]


async def test_executions_started_otherwise_are_nobodys_children(server) -> None:
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello", "alone")
    claim = await worker.take()
    await worker.checkpoint(
        claim.execution_id,
        claim.generation,
        [record(EventType.WORKFLOW_STARTED), record(EventType.WORKFLOW_PAUSED)],
    )
    assert await _state(server, run.execution_id) == ExecutionState.PAUSED


async def test_resuming_a_parent_paused_by_its_child_answers_the_childs_pause(server) -> None:
    await server.register()
    worker = await server.worker(capacity=8)
    parent_id = await _paused_by_child(server, worker)
    with pytest.raises(ExecutionStateError, match="it waits at answer"):
        await server.client.resume("hello", parent_id, "yes", pause="other")
    resumed = await server.client.resume("hello", parent_id, "yes", pause="answer")
    assert resumed.state == ExecutionState.SCHEDULED
    child = await server.client.status("hello", "kid", detailed=True)
    assert child.state == ExecutionState.SCHEDULED and child.pauses == []
    answers = [e.view for e in child.events or [] if e.type == EventType.TASK_COMPLETED]
    assert answers == ["yes"]  # its pause's answer
    offered = {(await worker.next_offer()).execution_id for _ in range(2)}
    assert offered == {parent_id, "kid"}  # both queued: the parent waits for its child again


async def test_a_parent_paused_by_two_children_names_them_instead_of_guessing(server) -> None:
    await server.register()
    worker = await server.worker(capacity=8)
    run, parent = await _running_parent(server, worker)
    for kid in ("kid-a", "kid-b"):  # two branches of a parallel, each calling a child
        await _paused_child(server, worker, run.execution_id, kid)
    await worker.checkpoint(
        parent.execution_id, parent.generation, [record(EventType.WORKFLOW_PAUSED)]
    )
    with pytest.raises(
        ExecutionStateError, match=r"2 paused subworkflows \(kid-a, kid-b\)"
    ) as info:
        await server.client.resume("hello", run.execution_id, "yes")
    assert info.value.status_code == 409 and info.value.details["children"] == ["kid-a", "kid-b"]
    assert await _state(server, run.execution_id) == ExecutionState.PAUSED  # nothing changed

    for kid in ("kid-a", "kid-b"):
        await server.client.resume("hello", kid, "yes")
        await worker.finish(await worker.take(), "done")
    assert (await worker.next_offer()).execution_id == run.execution_id  # after the last one


async def _lose_the_continuation(server, child_id: str) -> None:
    """What a server that ended between PostgreSQL's one-statement checkpoint finishing
    ``child_id`` and the transaction continuing its parent leaves: the child finished, the
    parent still paused."""
    async with server.runtime.db.write() as tx:
        await tx.conn.execute(
            sa.text("UPDATE executions SET state = 'COMPLETED' WHERE id = :id"), {"id": child_id}
        )


async def test_a_parent_a_lost_server_left_paused_is_resumed_by_the_next_look(server) -> None:
    await server.register()
    worker = await server.worker(capacity=8)
    parent_id = await _paused_by_child(server, worker)
    await _lose_the_continuation(server, "kid")
    assert await _state(server, parent_id) == ExecutionState.PAUSED

    runtime = server.runtime
    liveness = Liveness(runtime.workers, runtime.executions, 30.0, 1.0)  # as a server starts
    assert await liveness.check_parents() == [parent_id]
    assert (await worker.next_offer()).execution_id == parent_id
    assert await liveness.check_parents() == []  # the next look is a minute away
    assert await runtime.executions.continue_stranded_parents() == []  # and finds nothing


async def test_the_look_for_parents_left_paused_passes_those_a_person_must_answer(
    server,
) -> None:
    """Batches of one: the first parent in id order waits for a person (its own pause), the
    two after it were left paused; the look goes past the first and resumes the others."""
    await server.register()
    worker = await server.worker(capacity=8)
    _, own = await _running_parent(server, worker, "parent-a")
    await _child_of(server, "parent-a", "kid-a")
    await worker.finish(await worker.take(), "done")
    await worker.checkpoint(
        own.execution_id,
        own.generation,
        [*pause_events("approve", "pause:p:0"), record(EventType.WORKFLOW_PAUSED, "approve")],
    )
    for name in ("b", "c"):
        _, parent = await _running_parent(server, worker, f"parent-{name}")
        await _paused_child(server, worker, f"parent-{name}", f"kid-{name}")
        await worker.checkpoint(
            parent.execution_id, parent.generation, [record(EventType.WORKFLOW_PAUSED)]
        )
        await _lose_the_continuation(server, f"kid-{name}")

    resumed = await server.runtime.executions.continue_stranded_parents(batch=1)
    assert resumed == ["parent-b", "parent-c"]
    assert await _state(server, "parent-a") == ExecutionState.PAUSED
