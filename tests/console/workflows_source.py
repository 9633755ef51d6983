"""Workflows the console's browser tests run (registered by uploading this file's text)."""

SOURCE = '''
import asyncio
from pathlib import Path

from flux import ExecutionContext, task, workflow
from flux.tasks import pause


@task
async def add_one(x: int) -> int:
    return x + 1


@task
async def wait_for(path: str) -> str:
    # Finishes when the test creates the file: the test decides when it completes.
    while not Path(path).exists():
        await asyncio.sleep(0.05)
    return Path(path).read_text()


@task
async def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


@workflow
async def adder(ctx: ExecutionContext[int]) -> int:
    return await add_one(ctx.input or 0)


@workflow
async def gated(ctx: ExecutionContext[str]) -> str:
    first = await add_one(1)
    return f"{first} {await wait_for(ctx.input)}"


@workflow
async def approval(ctx: ExecutionContext[dict]) -> dict:
    answer = await pause("approve", data={"amount": 120})
    return {"answer": answer}


@workflow
async def failing(ctx: ExecutionContext[int]) -> int:
    return await boom(ctx.input or 0)


@workflow
async def many_tasks(ctx: ExecutionContext[int]) -> int:
    total = 0
    for i in range(ctx.input):
        total = await add_one(total)
    return total


@workflow
async def sneaky(ctx: ExecutionContext) -> str:
    """Holds <script>alert("x")</script> in its docstring."""
    return "</pre><script>document.title = 'owned'</script>"
'''
