"""Engine with checkpointers that are not durable on save (a worker's): no task body
starts before earlier completions are acknowledged."""

from __future__ import annotations

import asyncio
from typing import Any

from flux import ExecutionContext, task, workflow
from flux.domain import EventType, ExecutionEvent


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
