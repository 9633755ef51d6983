"""flux.testing: in-memory runs and the virtual clock, as a user's test suite would use them."""

from __future__ import annotations

from datetime import timedelta

from flux import ExecutionContext, task, workflow
from flux.domain import EventType
from flux.tasks import now, pause, sleep
from flux.testing import MemoryStore, VirtualClock, run

calls: list[int] = []


@task.with_options(retry_max_attempts=3, retry_delay=30, retry_backoff=2)
async def flaky(n: int) -> int:
    calls.append(n)
    if len(calls) < 3:
        raise RuntimeError("not yet")
    return n * 10


@task.with_options(secret_requests=["TOKEN"])
async def uses_secret(secrets: dict = {}) -> str:  # noqa: B006 - the spec's signature
    return secrets["TOKEN"][::-1]


@workflow
async def day_long(ctx: ExecutionContext[int]) -> dict:
    start = await now()
    await sleep(timedelta(hours=24))
    value = await flaky(ctx.input)
    token = await uses_secret()
    answer = await pause("approve")
    end = await now()
    return {
        "hours": (end - start).total_seconds() / 3600,
        "value": value,
        "token": token,
        "answer": answer,
    }


def test_virtual_clock_makes_sleeps_and_retry_delays_instant() -> None:
    calls.clear()
    clock = VirtualClock()
    store = MemoryStore(secrets={"TOKEN": "abc"})
    ctx = run(day_long, 4, store=store, clock=clock)
    assert ctx.is_paused
    assert clock.slept == [86400.0, 30.0, 60.0]
    ctx = run(day_long, "ok", execution_id=ctx.execution_id, store=store, clock=clock)
    assert ctx.has_succeeded
    assert ctx.output == {"hours": 24 + 90 / 3600, "value": 40, "token": "cba", "answer": "ok"}
    assert calls == [4, 4, 4]  # the resume replayed the task instead of running it again
    types = [e.type for e in store.events(ctx.execution_id)]
    assert types.count(EventType.TASK_RETRY_FAILED) == 1
    assert types[-1] is EventType.WORKFLOW_COMPLETED


def test_memory_store_reports_missing_secrets_by_name() -> None:
    ctx = run(day_long, 1, store=MemoryStore(), clock=VirtualClock())
    assert ctx.has_failed
    assert "TOKEN" in str(ctx.output)
