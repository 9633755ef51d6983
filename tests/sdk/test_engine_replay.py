"""Engine replay: resumes that do not run finished work again, non-determinism, durable
sleeps and cancels, and runs resumed from the history a crashed process left."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from flux import ExecutionContext, task, workflow
from flux._clock import current_clock
from flux._identity import call_digest
from flux.domain import EventType, ExecutionEvent
from flux.errors import NonDeterminismError
from flux.local import open_store
from flux.tasks import pause, sleep
from flux.testing import VirtualClock
from sdk_support import events_of, kinds

from tests.support.waiting import wait_until


def test_a_failed_task_replays_as_a_failure():
    runs: list[int] = []

    class QuotaExceeded(Exception):
        pass

    @task
    async def fetch() -> None:
        runs.append(1)
        raise QuotaExceeded("quota exceeded")

    @workflow
    async def wf(ctx: ExecutionContext):
        try:
            await fetch()
        except QuotaExceeded as exc:
            caught = (type(exc).__name__, str(exc))
        return [caught, await pause("after")]

    paused = wf.run()
    assert paused.is_paused
    result = wf.run("go", execution_id=paused.execution_id)
    assert result.output == [("QuotaExceeded", "quota exceeded"), "go"]
    assert runs == [1]


def test_finished_tasks_do_not_run_again_on_resume():
    runs: list[str] = []

    @task
    async def step(name: str) -> str:
        runs.append(name)
        return name.upper()

    @workflow
    async def wf(ctx: ExecutionContext):
        a = await step("a")
        answer = await pause("gate")
        b = await step("b")
        return [a, answer, b]

    paused = wf.run()
    assert runs == ["a"]
    result = wf.run(42, execution_id=paused.execution_id)
    assert result.output == ["A", 42, "B"]
    assert runs == ["a", "b"]


def test_sequential_pauses_each_get_their_own_resume_input():
    runs: list[str] = []

    @task
    async def approve_step(who: str) -> str:
        runs.append(who)
        answer = await pause(f"ask {who}")  # a pause inside a task
        return f"{who} said {answer}"

    @workflow
    async def wf(ctx: ExecutionContext):
        first = await approve_step("alice")
        second = await pause("final")
        return [first, second]

    first = wf.run()
    assert events_of(first, "TASK_PAUSED")[0].value == {"name": "ask alice", "data": None}
    second = wf.run("yes", execution_id=first.execution_id)
    assert second.is_paused
    assert events_of(second, "TASK_PAUSED")[-1].value == {"name": "final", "data": None}
    third = wf.run("ship it", execution_id=first.execution_id)
    assert third.output == ["alice said yes", "ship it"]
    assert runs == ["alice", "alice"]  # the task body re-ran up to its pause, as designed


def test_cancel_during_a_durable_sleep():

    ids: list[str] = []
    sleeping = threading.Event()

    @task
    async def announce() -> None:
        sleeping.set()

    @workflow
    async def napper(ctx: ExecutionContext):
        ids.append(ctx.execution_id)
        await announce()
        await sleep(60)

    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(napper.run()))
    thread.start()
    try:
        assert sleeping.wait(30)
        # Wait until the sleep is on record, then cancel it.
        wait_until(
            lambda: "sleep" in {e.name for e in open_store().load(ids[0]).ctx.events},
            what="the sleep on record",
        )
        workflow.cancel(ids[0])
    finally:
        thread.join(60)
    assert not thread.is_alive()
    assert results[0].is_cancelled
    assert kinds(results[0], "sleep") == ["TASK_STARTED", "TASK_CANCELLED"]


def test_non_determinism_names_the_first_mismatch_and_leaves_it_resumable(db_path):
    @task
    async def charge(amount: int) -> str:
        return f"charged {amount}"

    @task
    async def refund(amount: int) -> str:
        return f"refunded {amount}"

    @workflow.with_options(name="billing")
    async def original(ctx: ExecutionContext):
        receipt = await charge(10)
        return [receipt, await pause("confirm")]

    @workflow.with_options(name="billing")
    async def changed(ctx: ExecutionContext):
        receipt = await refund(10)
        return [receipt, await pause("confirm")]

    paused = original.run()
    before = open_store().load(paused.execution_id).ctx

    with pytest.raises(NonDeterminismError) as info:
        changed.run("yes", execution_id=paused.execution_id)
    message = str(info.value)
    assert "call #1" in message
    assert "'refund'" in message and "'charge'" in message
    assert info.value.details["expected"].startswith("charge:")
    assert info.value.details["actual"].startswith("refund:")

    after = open_store().load(paused.execution_id).ctx
    assert after.is_paused
    assert [e.id for e in after.events] == [e.id for e in before.events]  # nothing recorded

    result = original.run("confirmed", execution_id=paused.execution_id)
    assert result.has_succeeded
    assert result.output == ["charged 10", "confirmed"]


def test_non_determinism_cannot_be_swallowed_by_the_workflow():
    @task
    async def a() -> str:
        return "a"

    @task
    async def b() -> str:
        return "b"

    @workflow.with_options(name="swallow")
    async def original(ctx: ExecutionContext):
        await a()
        return await pause("p")

    @workflow.with_options(name="swallow")
    async def changed(ctx: ExecutionContext):
        try:
            await b()
        except Exception:
            return "swallowed"
        return await pause("p")

    paused = original.run()
    with pytest.raises(NonDeterminismError):
        changed.run(1, execution_id=paused.execution_id)
    assert open_store().load(paused.execution_id).ctx.is_paused
    assert original.run(2, execution_id=paused.execution_id).output == 2


def test_non_determinism_inside_a_task_is_not_a_task_failure():
    @task
    async def x() -> str:
        return "x"

    @task
    async def y() -> str:
        return "y"

    fallbacks: list[int] = []

    @task.with_options(
        name="outer", retry_max_attempts=2, retry_delay=0, fallback=lambda: fallbacks.append(1)
    )
    async def outer_original() -> str:
        return await x()

    @task.with_options(
        name="outer", retry_max_attempts=2, retry_delay=0, fallback=lambda: fallbacks.append(1)
    )
    async def outer_changed() -> str:
        return await y()

    @workflow.with_options(name="nested_nd")
    async def original(ctx: ExecutionContext):
        await outer_original()
        return await pause("p")

    @workflow.with_options(name="nested_nd")
    async def changed(ctx: ExecutionContext):
        await outer_changed()
        return await pause("p")

    # Record the nested call of the outer task, then crash before the outer task finished:
    # build that history by dropping the outer task's completion.
    paused = original.run()
    store = open_store()
    events = [
        e
        for e in store.load(paused.execution_id).ctx.events
        if not (e.name == "outer" and e.type is EventType.TASK_COMPLETED)
        and e.type is not EventType.WORKFLOW_PAUSED
        and e.name != "pause"
    ]
    crashed = _store_history("nested_nd", events)

    with pytest.raises(NonDeterminismError, match="inside task 'outer'"):
        changed.run(execution_id=crashed)
    assert fallbacks == []
    assert "TASK_FAILED" not in kinds(store.load(crashed).ctx)


def test_durable_sleep_resumes_waiting_only_the_time_left():
    @workflow
    async def napper(ctx: ExecutionContext):
        await sleep(60)
        return "rested"

    # A run that started its 60 s sleep 59.7 s ago, then its process died.
    until = datetime.now(UTC).timestamp() + 0.3
    sleep_id = f"sleep:{call_digest('', 'sleep', (60,), {})}:0"
    execution_id = _store_history(
        "napper",
        [
            ExecutionEvent(EventType.WORKFLOW_STARTED, "x", "napper", None),
            ExecutionEvent(
                EventType.TASK_STARTED, sleep_id, "sleep", {"seconds": 60, "until": until}
            ),
        ],
    )

    clock = VirtualClock(start=datetime.now(UTC))  # records what the run sleeps
    token = current_clock.set(clock)
    try:
        result = napper.run(execution_id=execution_id)
    finally:
        current_clock.reset(token)

    assert result.output == "rested"
    [slept] = clock.slept  # only the time that was left, not the whole 60 s again
    assert 0 < slept <= 0.3
    assert clock.timestamp() >= until
    assert kinds(result, "sleep") == ["TASK_STARTED", "TASK_COMPLETED"]


def test_cancel_an_execution_whose_process_died():
    @workflow
    async def orphan(ctx: ExecutionContext):
        raise AssertionError("must not run again")

    execution_id = _store_history(
        "orphan", [ExecutionEvent(EventType.WORKFLOW_STARTED, "x", "orphan", None)]
    )
    cancelled = workflow.cancel(execution_id)
    assert cancelled.is_cancelled
    stored = open_store().load(execution_id).ctx
    assert stored.is_cancelled
    assert [e.type for e in stored.events][-1] is EventType.WORKFLOW_CANCELLED

    # running it again returns the recorded outcome; the body does not run
    again = orphan.run(execution_id=execution_id)
    assert again.is_cancelled
    assert [e.id for e in again.events] == [e.id for e in stored.events]


def test_retry_resumes_at_the_interrupted_attempt_in_process():
    calls: list[int] = []

    @task.with_options(name="flaky", retry_max_attempts=4, retry_delay=0)
    async def flaky() -> str:
        calls.append(1)
        return "ok"

    @workflow
    async def retrying(ctx: ExecutionContext):
        return await flaky()

    started = ExecutionEvent(EventType.TASK_STARTED, _flaky_id(), "flaky", None)
    history = [
        ExecutionEvent(EventType.WORKFLOW_STARTED, "x", "retrying", None),
        started,
        _retry(EventType.TASK_RETRY_STARTED, 1),
        _retry(EventType.TASK_RETRY_FAILED, ValueError("1")),
        _retry(EventType.TASK_RETRY_STARTED, 2),  # the process died during attempt 2
    ]
    result = retrying.run(execution_id=_store_history("retrying", history))
    assert result.output == "ok"
    assert calls == [1]
    attempts = [e.value["attempt"] for e in events_of(result, "TASK_RETRY_STARTED")]
    assert attempts == [1, 2]  # attempt 2 ran again; no attempt 3 was started


def test_retries_exhausted_before_a_crash_are_not_run_again():
    calls: list[int] = []

    @task.with_options(name="flaky", retry_max_attempts=1, retry_delay=0)
    async def flaky() -> str:
        calls.append(1)
        return "ok"

    @workflow
    async def retrying(ctx: ExecutionContext):
        try:
            return await flaky()
        except ValueError as exc:
            return f"gave up: {exc}"

    history = [
        ExecutionEvent(EventType.WORKFLOW_STARTED, "x", "retrying", None),
        ExecutionEvent(EventType.TASK_STARTED, _flaky_id(), "flaky", None),
        _retry(EventType.TASK_RETRY_STARTED, 1),
        _retry(EventType.TASK_RETRY_FAILED, ValueError("last")),
        # the process died before the failure was recorded
    ]
    result = retrying.run(execution_id=_store_history("retrying", history))
    assert calls == []
    assert result.output == "gave up: last"


# -- helpers --------------------------------------------------------------------------------------


def _flaky_id() -> str:
    return f"flaky:{call_digest('', 'flaky', (), {})}:0"


def _retry(type_: EventType, value: Any) -> ExecutionEvent:
    if type_ is EventType.TASK_RETRY_STARTED:
        value = {"attempt": value, "delay": 0, "not_before": 0}
    return ExecutionEvent(type_, _flaky_id(), "flaky", value, scope="")


def _store_history(workflow_name: str, events: list[ExecutionEvent]) -> str:
    """Store a RUNNING execution with ``events`` and no live owner: a crashed run."""
    store = open_store()
    ctx: ExecutionContext[Any] = ExecutionContext(workflow_name)
    store.create(ctx)
    for event in events:
        if event.type.is_workflow:
            event.source_id = ctx.execution_id
        ctx.append_event(event)
    store.save(ctx, events)
    store.release(ctx.execution_id)
    return ctx.execution_id
