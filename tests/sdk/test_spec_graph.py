"""The spec's graph chapter (flux-core 0.18 README): its SDK code blocks, run with asserted
results, and what graph validation refuses."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from flux import ExecutionContext, task, workflow
from flux.errors import GraphValidationError
from flux.tasks import Graph
from sdk_support import events_of


def test_graph_example():
    @task
    async def get_name(input: str) -> str:
        return input

    @task
    async def say_hello(name: str) -> str:
        return f"Hello, {name}"

    @workflow
    async def graph_workflow(ctx: ExecutionContext[str]):
        hello = (
            Graph("hello_world")
            .add_node("get_name", get_name)
            .add_node("say_hello", say_hello)
            .add_edge("get_name", "say_hello")
            .start_with("get_name")
            .end_with("say_hello")
        )
        return await hello(ctx.input)

    result = graph_workflow.run("Joe")
    assert result.output == "Hello, Joe"
    assert [e.name for e in events_of(result, "TASK_COMPLETED")] == ["get_name", "say_hello"]


def test_graph_conditional_edges_and_parallel_layers():
    active: set[str] = set()
    peak: list[int] = []
    both_running = threading.Event()

    @task
    async def classify(n: int) -> int:
        return n

    async def branch(name: str, value: int) -> str:
        active.add(name)
        peak.append(len(active))
        if len(active) == 2:
            both_running.set()
        # Both branches of a layer run at once: each waits until the other has started.
        await asyncio.wait_for(asyncio.to_thread(both_running.wait, 10), 10)
        active.discard(name)
        return f"{name}:{value}"

    @task
    async def left(n: int) -> str:
        return await branch("left", n)

    @task
    async def right(n: int) -> str:
        return await branch("right", n)

    @task
    async def big(n: int) -> str:
        return "big"

    @task
    async def join(parts: dict[str, Any]) -> list[str]:
        return sorted(str(v) for v in parts.values())

    def graph() -> Graph:
        return (
            Graph("branches")
            .add_node("classify", classify)
            .add_node("left", left)
            .add_node("right", right)
            .add_node("big", big)
            .add_node("join", join)
            .add_edge("classify", "left")
            .add_edge("classify", "right")
            .add_edge("classify", "big", condition=lambda n: n > 100)
            .add_edge("left", "join")
            .add_edge("right", "join")
            .add_edge("big", "join")
            .start_with("classify")
            .end_with("join")
        )

    @workflow
    async def graph_wf(ctx: ExecutionContext[int]):
        return await graph()(ctx.input)

    small = graph_wf.run(7)
    assert small.output == ["left:7", "right:7"]
    assert "big" not in {e.name for e in small.events}
    assert max(peak) == 2

    large = graph_wf.run(500)
    assert large.output == ["big", "left:500", "right:500"]
    assert graph().validate() == [["classify"], ["left", "right", "big"], ["join"]]


def test_graph_validation_errors():
    @task
    async def a(x):
        return x

    @task
    async def b(x):
        return x

    with pytest.raises(GraphValidationError, match=r"no node 'missing'.*add_node"):
        Graph("g").add_node("a", a).add_edge("a", "missing")

    with pytest.raises(GraphValidationError, match=r"cycle"):
        (
            Graph("g")
            .add_node("a", a)
            .add_node("b", b)
            .add_edge("a", "b")
            .add_edge("b", "a")
            .start_with("a")
            .end_with("b")
            .validate()
        )

    with pytest.raises(GraphValidationError, match=r"start_with.*end_with"):
        Graph("g").add_node("a", a).end_with("a").validate()

    with pytest.raises(GraphValidationError, match=r"start_with.*end_with"):
        Graph("g").add_node("a", a).start_with("a").validate()

    with pytest.raises(GraphValidationError, match=r"end node 'b' is not reachable"):
        Graph("g").add_node("a", a).add_node("b", b).start_with("a").end_with("b").validate()

    with pytest.raises(GraphValidationError, match=r"already has a node 'a'"):
        Graph("g").add_node("a", a).add_node("a", b)


def test_invalid_graph_inside_a_workflow_fails_the_execution():
    @task
    async def a(x):
        return x

    @task
    async def b(x):
        return x

    @workflow
    async def bad_graph_wf(ctx: ExecutionContext):
        g = Graph("g").add_node("a", a).add_node("b", b).start_with("a").end_with("b")
        return await g(1)

    result = bad_graph_wf.run()
    assert result.has_failed
    assert isinstance(result.output, GraphValidationError)
    assert "not reachable" in str(result.output)
    assert events_of(result, "TASK_STARTED") == []  # validated before any node ran
