"""Engine edge cases: retries, fallback, rollback, timeouts, structured concurrency, replay."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from flux import ExecutionContext, task, workflow
from flux._clock import current_clock
from flux._identity import call_digest
from flux.domain import EventType, ExecutionEvent
from flux.errors import (
    ExecutionStateError,
    NonDeterminismError,
    SerializationError,
    TaskTimeoutError,
    UsageError,
)
from flux.local import open_store
from flux.tasks import call, parallel, pause, sleep
from flux.testing import VirtualClock
from sdk_support import events_of, kinds

from tests.support.waiting import wait_until

# -- retries, fallback, rollback ------------------------------------------------------------------


def test_retry_counts_and_backoff_events():
    calls: list[int] = []

    @task.with_options(retry_max_attempts=3, retry_delay=0.01, retry_backoff=3)
    async def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) < 3:
            raise ConnectionError(f"attempt {len(calls)} failed")
        return x * 2

    @workflow
    async def retry_wf(ctx: ExecutionContext[int]):
        return await flaky(ctx.input)

    result = retry_wf.run(21)

    assert result.output == 42
    assert calls == [21, 21, 21]
    assert kinds(result, "flaky") == [
        "TASK_STARTED",
        "TASK_RETRY_STARTED",
        "TASK_RETRY_FAILED",
        "TASK_RETRY_STARTED",
        "TASK_RETRY_COMPLETED",
        "TASK_COMPLETED",
    ]
    started = events_of(result, "TASK_RETRY_STARTED")
    assert [e.value["attempt"] for e in started] == [1, 2]
    assert [e.value["delay"] for e in started] == pytest.approx([0.01, 0.03])
    failed = events_of(result, "TASK_RETRY_FAILED")
    assert isinstance(failed[0].value, ConnectionError)
    assert str(failed[0].value) == "attempt 2 failed"
    # Retry events belong to the task, in the scope the task was called from.
    assert {e.scope for e in result.events if e.name == "flaky"} == {""}


def test_fallback_after_retries_gets_the_arguments():
    calls: list[str] = []

    async def fallback(name: str, *, punctuation: str) -> str:
        return f"fallback for {name}{punctuation}"

    @task.with_options(retry_max_attempts=2, retry_delay=0, fallback=fallback)
    async def greet(name: str, *, punctuation: str) -> str:
        calls.append(name)
        raise TimeoutError("upstream down")

    @workflow
    async def fallback_wf(ctx: ExecutionContext[str]):
        return await greet(ctx.input, punctuation="!")

    result = fallback_wf.run("Ada")

    assert result.output == "fallback for Ada!"
    assert calls == ["Ada"] * 3
    assert kinds(result, "greet")[-2:] == ["TASK_FALLBACK_STARTED", "TASK_FALLBACK_COMPLETED"]
    assert "TASK_FAILED" not in kinds(result)


def test_rollback_on_failure_and_the_user_exception_is_the_output():
    undone: list[tuple[Any, ...]] = []

    def rollback(order_id: int) -> None:
        undone.append(("rollback", order_id))

    class PaymentDeclined(Exception):
        pass

    @task.with_options(rollback=rollback)
    async def charge(order_id: int) -> None:
        raise PaymentDeclined(f"order {order_id} declined")

    @workflow
    async def order_wf(ctx: ExecutionContext[int]):
        await charge(ctx.input)

    result = order_wf.run(7)

    assert result.has_failed
    assert undone == [("rollback", 7)]
    assert type(result.output) is PaymentDeclined
    assert str(result.output) == "order 7 declined"
    assert kinds(result, "charge") == [
        "TASK_STARTED",
        "TASK_ROLLBACK_STARTED",
        "TASK_ROLLBACK_COMPLETED",
        "TASK_FAILED",
    ]
    # The stored execution reports the same failure.
    stored = open_store().load(result.execution_id).ctx
    assert stored.has_failed
    assert (type(stored.output).__name__, str(stored.output)) == (
        "PaymentDeclined",
        "order 7 declined",
    )


def test_failing_rollback_is_recorded_and_the_task_error_wins():
    def rollback() -> None:
        raise OSError("rollback broke")

    @task.with_options(rollback=rollback)
    async def step() -> None:
        raise ValueError("step broke")

    @workflow
    async def wf(ctx: ExecutionContext):
        await step()

    result = wf.run()
    assert isinstance(result.output, ValueError)
    assert kinds(result, "step")[-3:] == [
        "TASK_ROLLBACK_STARTED",
        "TASK_ROLLBACK_FAILED",
        "TASK_FAILED",
    ]


def test_timeout_cuts_off_an_awaiting_task():
    @task.with_options(timeout=0.2)
    async def slow() -> str:
        await asyncio.sleep(30)
        return "too late"

    @workflow
    async def timeout_wf(ctx: ExecutionContext):
        return await slow()

    result = timeout_wf.run()

    # Had the timeout not cut the attempt off, the task would have returned "too late".
    assert result.has_failed
    assert isinstance(result.output, TaskTimeoutError)
    assert result.output.details["timeout"] == 0.2
    assert isinstance(result.output, TimeoutError)
    assert "'slow' timed out after 0.2s" in str(result.output)


def test_timeout_applies_per_attempt_and_is_retried():
    calls: list[int] = []

    @task.with_options(timeout=0.2, retry_max_attempts=1, retry_delay=0)
    async def slow_then_fast() -> str:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(30)
        return "fast"

    @workflow
    async def wf(ctx: ExecutionContext):
        return await slow_then_fast()

    result = wf.run()
    assert result.output == "fast"
    assert len(calls) == 2


def test_task_failure_caught_by_the_workflow():
    @task
    async def fails() -> None:
        raise KeyError("missing")

    @task
    async def recover(reason: str) -> str:
        return f"recovered from {reason}"

    @workflow
    async def wf(ctx: ExecutionContext):
        try:
            await fails()
        except KeyError as exc:
            return await recover(type(exc).__name__)

    result = wf.run()
    assert result.has_succeeded
    assert result.output == "recovered from KeyError"
    assert kinds(result, "fails") == ["TASK_STARTED", "TASK_FAILED"]


def test_task_called_outside_a_workflow_runs_with_its_policies():
    calls: list[int] = []

    @task.with_options(retry_max_attempts=2, retry_delay=0, fallback=lambda: "fallback")
    async def plain() -> str:
        calls.append(1)
        raise RuntimeError("no")

    assert asyncio.run(plain()) == "fallback"
    assert len(calls) == 3


# -- structured concurrency -----------------------------------------------------------------------


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


# -- identity and replay --------------------------------------------------------------------------


def test_nested_tasks_are_scoped_to_their_parent():
    @task
    async def inner(x: int) -> int:
        return x + 1

    @task
    async def outer(x: int) -> int:
        return await inner(x) + await inner(x)

    @workflow
    async def wf(ctx: ExecutionContext[int]):
        return await outer(ctx.input)

    result = wf.run(1)
    assert result.output == 4
    outer_id = events_of(result, "TASK_STARTED")[0].source_id
    inner_started = [e for e in events_of(result, "TASK_STARTED") if e.name == "inner"]
    assert [e.scope for e in inner_started] == [outer_id, outer_id]
    assert inner_started[0].source_id != inner_started[1].source_id


def test_repeated_identical_calls_get_distinct_occurrence_ids():
    @task
    async def same(x: int) -> int:
        return x

    @workflow
    async def wf(ctx: ExecutionContext):
        return [await same(1), await same(1), await same(2), await same(1)]

    result = wf.run()
    ids = [e.source_id for e in events_of(result, "TASK_STARTED")]
    digest_1 = call_digest("", "same", (1,), {})
    digest_2 = call_digest("", "same", (2,), {})
    assert ids == [
        f"same:{digest_1}:0",
        f"same:{digest_1}:1",
        f"same:{digest_2}:0",
        f"same:{digest_1}:2",
    ]


def test_identity_does_not_depend_on_object_addresses_or_dict_order():
    class Opaque:
        def __init__(self, v: int) -> None:
            self.v = v

    assert call_digest("", "t", (Opaque(1),), {}) == call_digest("", "t", (Opaque(1),), {})
    assert call_digest("", "t", (Opaque(1),), {}) != call_digest("", "t", (Opaque(2),), {})
    assert call_digest("", "t", ({"a": 1, "b": 2},), {}) == call_digest(
        "", "t", ({"b": 2, "a": 1},), {}
    )
    assert call_digest("", "t", ((1, 2),), {}) != call_digest("", "t", ([1, 2],), {})


def test_canonical_text_of_arguments_is_fixed():
    """Recorded histories name their calls by this text's digest: it must never change."""
    from flux._identity import canonical

    args = (1, "a'b", None, 2.5, True, b"x", [3, (4,)], {"k": [None]}, frozenset({2, 1}))
    expected = "(1,\"a'b\",None,2.5,True,b'x',[3,(4)],{'k':[None]},set{1,2})"
    assert canonical(args) == expected
    assert call_digest("", "t", (7, "x"), {"k": 1}) == "53c745bfc4f4d1ea"
    # Calls with no argument or one primitive take a shortcut to the same text.
    assert (canonical(()), canonical(("x",)), canonical((None,))) == ("()", "('x')", "(None)")
    assert call_digest("s", "t", (), {}) == "2ebbb5208f70b9e5"
    assert call_digest("", "t", (7,), {}) == "a6c311df6fd81cce"
    assert call_digest("", "t", ("x",), {"k": 1}) == "f3394e97ff15d735"


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


# -- values that cannot be stored, runs inside an event loop -------------------------------------


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


# -- subworkflows ---------------------------------------------------------------------------------


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


# -- checkpointers that are not durable on save (a worker's) ---------------------------------------


class _Remote:
    """Acknowledges what was saved only when flushed, like a worker's outbox."""

    durable_on_save = False

    def __init__(self) -> None:
        self.saved: list[list[EventType]] = []
        self.acknowledged = 0
        self.flushes = 0
        self.log: list[str] = []

    @property
    def count(self) -> int:
        return sum(len(batch) for batch in self.saved)

    def save(self, ctx: Any, events: list[ExecutionEvent]) -> None:
        self.saved.append([e.type for e in events])
        self.log += [e.type.value for e in events]

    async def flush(self) -> None:
        await asyncio.sleep(0)
        self.flushes += 1
        self.log.append("ack")
        self.acknowledged = self.count

    async def finish(self, ctx: Any) -> None:
        await self.flush()


async def test_no_task_body_starts_before_earlier_completions_are_acknowledged():
    from flux.runner import WorkflowRun

    remote = _Remote()
    seen: list[tuple[int, int]] = []

    @task
    async def step(i: int) -> int:
        seen.append((remote.acknowledged, remote.count))
        return i

    @workflow
    async def three_steps(ctx: ExecutionContext[None]) -> int:
        return await step(1) + await step(2) + await step(3)

    ctx: ExecutionContext[None] = ExecutionContext("three_steps", None, "e-settle")
    await WorkflowRun(three_steps, ctx, remote).execute()
    assert ctx.output == 6
    # Before steps 2 and 3, everything saved so far (the previous completion) was acknowledged.
    assert [ack == saved for ack, saved in seen] == [False, True, True]
    # One acknowledgement per side effect, not per event: before step 2, before step 3, and
    # at the end, where the last completion and the workflow's end travel together.
    assert remote.flushes == 3
    assert remote.log[-4:] == ["TASK_STARTED", "TASK_COMPLETED", "WORKFLOW_COMPLETED", "ack"]
    assert remote.acknowledged == remote.count == 8


# -- retry hints an error carries ------------------------------------------------------------------


class _Refused(Exception):
    retryable = False


class _Throttled(Exception):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def test_an_error_that_is_not_retryable_fails_the_task_at_once():
    calls: list[int] = []

    @task.with_options(retry_max_attempts=3, retry_delay=0)
    async def refused() -> None:
        calls.append(1)
        raise _Refused("bad credentials")

    @workflow
    async def refused_wf(ctx: ExecutionContext[None]):
        await refused()

    result = refused_wf.run()

    assert result.has_failed and isinstance(result.output, _Refused)
    assert calls == [1]
    assert kinds(result, "refused") == ["TASK_STARTED", "TASK_FAILED"]


def test_retry_after_stretches_the_next_delay():
    from flux.testing import VirtualClock, run

    calls: list[int] = []

    @task.with_options(retry_max_attempts=2, retry_delay=1, retry_backoff=1)
    async def throttled() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise _Throttled("slow down", retry_after=7.5)
        if len(calls) == 2:
            raise _Throttled("again", retry_after=0.2)  # shorter than the policy's delay
        return "done"

    @workflow
    async def throttled_wf(ctx: ExecutionContext[None]):
        return await throttled()

    clock = VirtualClock()
    result = run(throttled_wf, clock=clock)

    assert result.output == "done"
    assert [e.value["delay"] for e in events_of(result, "TASK_RETRY_STARTED")] == [7.5, 1.0]
    assert clock.slept == [7.5, 1.0]


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
