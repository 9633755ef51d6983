"""Wrong use of the API fails early with a FluxError that says what to fix, and writes nothing."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from flux import ExecutionContext, ExecutionState, task, workflow
from flux.errors import (
    ExecutionNotFoundError,
    ExecutionStateError,
    FluxError,
    GraphValidationError,
    SerializationError,
    UsageError,
)
from flux.tasks import Graph, pause, sleep
from sdk_support import row_counts


def raises(error: type[FluxError], pattern: str, fn: Callable[[], Any]) -> FluxError:
    with pytest.raises(error) as info:
        fn()
    assert isinstance(info.value, FluxError)
    assert re.search(pattern, str(info.value)), f"{pattern!r} not in {str(info.value)!r}"
    return info.value


async def _body(*args: Any, **kwargs: Any) -> None:
    pass


# -- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"retry_max_attempts": "3"}, r"retry_max_attempts='3' must be an int"),
        ({"retry_max_attempts": True}, r"retry_max_attempts=True must be an int"),
        ({"retry_max_attempts": -1}, r"retry_max_attempts=-1 must be >= 0"),
        ({"retry_delay": "1"}, r"retry_delay='1' must be a number"),
        ({"retry_delay": -0.5}, r"retry_delay=-0.5 must be a number >= 0"),
        ({"retry_backoff": None}, r"retry_backoff=None must be a number"),
        ({"timeout": "30"}, r"timeout='30' must be a number"),
        ({"fallback": "plan b"}, r"fallback='plan b' must be callable"),
        ({"rollback": 5}, r"rollback=5 must be callable"),
        ({"secret_requests": "API_KEY"}, r"secret_requests='API_KEY' must be a list of names"),
        ({"secret_requests": ["A", 1]}, r"secret_requests=\['A', 1\] must be a list of names"),
        ({"secret_requests": 5}, r"secret_requests=5 must be a list of names"),
        ({"cache": "yes"}, r"cache='yes' must be True or False"),
        ({"metadata": 1}, r"metadata=1 must be True or False"),
        ({"name": ""}, r"name='' must be a non-empty string"),
        ({"name": 7}, r"name=7 must be a non-empty string"),
        ({"retries": 3}, r"unknown task option 'retries'.*retry_max_attempts"),
    ],
)
def test_wrong_task_options(options, pattern, db_path):
    counts = row_counts(db_path)
    raises(UsageError, pattern, lambda: task.with_options(**options)(_body))
    assert row_counts(db_path) == counts


def test_wrong_options_on_an_existing_task_variant():
    @task
    async def base() -> None:
        pass

    raises(UsageError, r"timeout=\[1\] must be a number", lambda: base.with_options(timeout=[1]))
    raises(UsageError, r"unknown task option 'retry'", lambda: base.with_options(retry=2))


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"name": ""}, r"name='' must be a non-empty string"),
        ({"schedule": "0 9 * * *"}, r"schedule='0 9 \* \* \*' must be made with cron\(\)"),
        ({"requests": 5}, r"requests=5 must be a ResourceRequest or a dict"),
        ({"requests": {"cpus": 2}}, r"requests=\{'cpus': 2\}"),
        ({"secret_requests": "API_KEY"}, r"secret_requests='API_KEY' must be a list"),
        ({"secret_requests": 5}, r"secret_requests=5 must be a list of names"),
        ({"secret_requests": [None]}, r"secret_requests=\[None\] must be a list of names"),
        ({"metadata": 5}, r"metadata=5 must be a dict"),
        ({"schedules": None}, r"unknown workflow option 'schedules'.*schedule"),
    ],
)
def test_wrong_workflow_options(options, pattern, db_path):
    counts = row_counts(db_path)
    raises(UsageError, pattern, lambda: workflow.with_options(**options)(_body))
    assert row_counts(db_path) == counts


def test_non_async_functions_are_refused(db_path):
    def sync_task(x):
        return x

    def sync_workflow(ctx):
        return ctx

    async def agen():
        yield 1

    raises(UsageError, r"'sync_task' with 'async def'", lambda: task(sync_task))
    raises(UsageError, r"'sync_task' with 'async def'", lambda: task.with_options()(sync_task))
    raises(UsageError, r"'sync_workflow' with 'async def'", lambda: workflow(sync_workflow))
    raises(UsageError, r"'agen' with 'async def'", lambda: task(agen))
    raises(UsageError, r"got 5", lambda: task(5))
    raises(UsageError, r"'async def'", lambda: workflow(lambda ctx: ctx))
    assert row_counts(db_path) == (0, 0)


def test_builtins_refuse_bad_arguments_outside_and_inside_a_workflow():

    raises(UsageError, r"sleep\(-1\).*>= 0", lambda: asyncio.run(sleep(-1)))
    raises(UsageError, r"sleep\('soon'\)", lambda: asyncio.run(sleep("soon")))
    raises(UsageError, r"pause\(''\).*non-empty name", lambda: asyncio.run(pause("")))
    raises(UsageError, r"inside a running workflow", lambda: asyncio.run(pause("gate")))

    @workflow
    async def sleepy(ctx: ExecutionContext):
        await sleep(-5)

    result = sleepy.run()
    assert result.has_failed
    assert isinstance(result.output, UsageError)


# -- executions ----------------------------------------------------------------------------------


@workflow
async def greet(ctx: ExecutionContext[str]):
    return f"hi {ctx.input}"


@workflow
async def gate(ctx: ExecutionContext):
    return await pause("gate")


def test_unknown_execution_id(db_path):
    greet.run("x")
    counts = row_counts(db_path)
    err = raises(
        ExecutionNotFoundError,
        r"no execution with id 'nope'",
        lambda: greet.run(execution_id="nope"),
    )
    assert err.details["execution_id"] == "nope"
    raises(ExecutionNotFoundError, r"'nope'", lambda: workflow.cancel("nope"))
    assert row_counts(db_path) == counts


def test_unstorable_input_is_refused_before_anything_is_written(db_path):

    greet.run("x")
    counts = row_counts(db_path)
    raises(SerializationError, r"type 'lock'", lambda: greet.run(threading.Lock()))
    assert row_counts(db_path) == counts


def test_running_a_finished_execution_returns_its_recorded_context(db_path):
    done = greet.run("x")
    counts = row_counts(db_path)
    again = greet.run("again", execution_id=done.execution_id)
    assert again.state is ExecutionState.COMPLETED
    assert again.output == done.output
    assert again.input == "x"
    assert [e.id for e in again.events] == [e.id for e in done.events]
    # a named pause or none: the recorded outcome all the same, nothing run, nothing written
    assert greet.run("y", execution_id=done.execution_id, pause="p").output == done.output
    raises(ExecutionStateError, r"already finished", lambda: workflow.cancel(done.execution_id))
    assert row_counts(db_path) == counts


def test_resuming_with_the_wrong_workflow(db_path):
    paused = gate.run()
    counts = row_counts(db_path)
    raises(
        UsageError,
        r"belongs to workflow 'gate', not 'greet'",
        lambda: greet.run("x", execution_id=paused.execution_id),
    )
    assert row_counts(db_path) == counts
    assert gate.run("ok", execution_id=paused.execution_id).output == "ok"


def test_to_dict_error_shape():
    err = raises(ExecutionNotFoundError, "nope", lambda: greet.run(execution_id="nope"))
    shape = err.to_dict()
    assert shape["type"] == "ExecutionNotFoundError"
    assert shape["code"] == "execution_not_found"
    assert "nope" in shape["message"]
    assert shape["details"] == {"execution_id": "nope"}


# -- graphs --------------------------------------------------------------------------------------


@task
async def step_a(x: Any) -> Any:
    return x


@task
async def step_b(x: Any) -> Any:
    return x


def test_graph_with_a_cycle_is_refused_when_the_edge_is_added(db_path):
    graph = Graph("loop").add_node("a", step_a).add_node("b", step_b).add_edge("a", "b")
    raises(GraphValidationError, r"graph 'loop'.*cycle.*b -> a", lambda: graph.add_edge("b", "a"))
    raises(GraphValidationError, r"cycle.*a -> a", lambda: graph.add_edge("a", "a"))
    # The graph is unchanged and still usable.
    assert graph.start_with("a").end_with("b").validate() == [["a"], ["b"]]
    assert row_counts(db_path) == (0, 0)


def test_graph_with_an_unknown_node(db_path):
    graph = Graph("g").add_node("a", step_a)
    raises(
        GraphValidationError,
        r"no node 'x' \(nodes: a\); add_node",
        lambda: graph.add_edge("a", "x"),
    )
    raises(GraphValidationError, r"no node 'x'", lambda: graph.start_with("x"))
    raises(GraphValidationError, r"no node 'x'", lambda: graph.end_with("x"))
    raises(GraphValidationError, r"needs a task or async callable", lambda: graph.add_node("n", 3))
    raises(GraphValidationError, r"give the graph a non-empty name", lambda: Graph(""))
    assert row_counts(db_path) == (0, 0)
