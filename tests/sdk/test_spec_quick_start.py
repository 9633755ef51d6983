"""The spec's quick start (flux-core 0.18 README): its SDK code blocks, run with asserted
results: a basic workflow, parallel, pipeline, map."""

from __future__ import annotations

from flux import ExecutionContext, task, workflow
from flux.tasks import parallel, pipeline
from sdk_support import events_of, kinds

# -- Quick start 1: basic workflow ---------------------------------------------------------------


def test_quick_start_hello_world():
    @task
    async def say_hello(name: str) -> str:
        return f"Hello, {name}"

    @workflow
    async def hello_world(ctx: ExecutionContext[str]):
        return await say_hello(ctx.input)

    result = hello_world.run("World")

    assert result.output == "Hello, World"
    assert result.has_succeeded
    assert kinds(result) == [
        "WORKFLOW_STARTED",
        "TASK_STARTED",
        "TASK_COMPLETED",
        "WORKFLOW_COMPLETED",
    ]
    assert [e.name for e in result.events] == [
        "hello_world",
        "say_hello",
        "say_hello",
        "hello_world",
    ]


# -- Quick start 2: parallel ----------------------------------------------------------------------


def test_quick_start_parallel():
    @task
    async def say_hi(name: str):
        return f"Hi, {name}"

    @task
    async def say_hello(name: str):
        return f"Hello, {name}"

    @task
    async def say_hola(name: str):
        return f"Hola, {name}"

    @workflow
    async def parallel_workflow(ctx: ExecutionContext[str]):
        results = await parallel(say_hi(ctx.input), say_hello(ctx.input), say_hola(ctx.input))
        return results

    result = parallel_workflow.run("Joe")

    assert result.output == ["Hi, Joe", "Hello, Joe", "Hola, Joe"]
    completed = {e.name for e in events_of(result, "TASK_COMPLETED")}
    assert completed == {"say_hi", "say_hello", "say_hola"}


# -- Quick start 3: pipeline ----------------------------------------------------------------------


def test_quick_start_pipeline():
    @task
    async def multiply_by_two(x):
        return x * 2

    @task
    async def add_three(x):
        return x + 3

    @task
    async def square(x):
        return x * x

    @workflow
    async def pipeline_workflow(ctx: ExecutionContext[int]):
        result = await pipeline(multiply_by_two, add_three, square, input=ctx.input)
        return result

    result = pipeline_workflow.run(5)

    assert result.output == ((5 * 2) + 3) ** 2
    assert [e.name for e in events_of(result, "TASK_COMPLETED")] == [
        "multiply_by_two",
        "add_three",
        "square",
    ]


# -- Quick start 4: map ---------------------------------------------------------------------------


def test_quick_start_map():
    @task
    async def process_item(item: str):
        return item.upper()

    @workflow
    async def map_workflow(ctx: ExecutionContext[list[str]]):
        results = await process_item.map(ctx.input)
        return results

    result = map_workflow.run(["apple", "banana", "cherry"])

    assert result.output == ["APPLE", "BANANA", "CHERRY"]
    assert len(events_of(result, "TASK_COMPLETED")) == 3
