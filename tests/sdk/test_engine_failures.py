"""Engine edge cases of a failing task: retries, fallback, rollback, timeouts, and the
retry hints an error carries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from flux import ExecutionContext, task, workflow
from flux.errors import TaskTimeoutError
from flux.local import open_store
from sdk_support import events_of, kinds

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
