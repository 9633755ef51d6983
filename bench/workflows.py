"""Workflows the server benchmarks register (uploaded as source, run by real workers)."""

from flux import ExecutionContext, task, workflow
from flux.tasks import pause


@task
async def noop(i: int) -> int:
    return i


@workflow
async def bench_one(ctx: ExecutionContext[int]) -> int:
    return await noop(1)


@workflow
async def bench_tasks(ctx: ExecutionContext[int]) -> int:
    total = 0
    for i in range(ctx.input or 100):
        total += await noop(i)
    return total


@workflow
async def bench_replay(ctx: ExecutionContext[int]) -> int:
    for i in range(ctx.input or 0):
        await noop(i)
    await pause("end")
    return 0
