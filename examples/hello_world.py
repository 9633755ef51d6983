"""The smallest Flux program: one task, one workflow, run durably in this process."""

from flux import ExecutionContext, task, workflow


@task
async def say_hello(name: str) -> str:
    return f"Hello, {name}"


@workflow
async def hello_world(ctx: ExecutionContext[str]) -> str:
    return await say_hello(ctx.input)


if __name__ == "__main__":
    ctx = hello_world.run("World")
    print(ctx.output)
