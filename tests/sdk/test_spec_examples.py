"""Every SDK code block of the spec (flux-core 0.18 README), run with asserted results.

Delays in the blocks (retry_delay=1, sleep(2.5)) are shortened so the suite stays fast; the
shape of each block is kept.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from flux import ExecutionContext, task, workflow
from flux.errors import GraphValidationError, SecretNotFoundError
from flux.local import open_store
from flux.tasks import Graph, choice, now, parallel, pause, pipeline, randint, sleep, uuid4
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


# -- Scheduled workflows --------------------------------------------------------------------------


def test_scheduled_workflow_definitions():
    from flux import cron, interval
    from flux.schedules import CronSchedule, IntervalSchedule

    @task
    async def generate_daily_report(date: str):
        return f"Report generated for {date}"

    @workflow.with_options(name="daily_report", schedule=cron("0 9 * * MON-FRI", timezone="UTC"))
    async def daily_report_workflow(ctx: ExecutionContext):
        result = await generate_daily_report("today")
        return {"report": result}

    @workflow.with_options(name="data_sync", schedule=interval(hours=6, timezone="UTC"))
    async def data_sync_workflow(ctx: ExecutionContext):
        return {"status": "synced"}

    assert daily_report_workflow.name == "daily_report"
    assert isinstance(daily_report_workflow.schedule, CronSchedule)
    assert daily_report_workflow.schedule.to_config() == {
        "type": "cron",
        "cron_expression": "0 9 * * MON-FRI",
        "timezone": "UTC",
    }
    # Friday 10:00 UTC -> next is Monday 09:00 UTC.
    friday = datetime(2025, 1, 3, 10, 0, tzinfo=UTC)
    assert daily_report_workflow.schedule.next_run_after(friday) == datetime(
        2025, 1, 6, 9, 0, tzinfo=UTC
    )

    assert data_sync_workflow.name == "data_sync"
    assert isinstance(data_sync_workflow.schedule, IntervalSchedule)
    assert data_sync_workflow.schedule.interval_seconds == 6 * 3600
    assert data_sync_workflow.schedule.timezone == "UTC"

    # The schedule is metadata: the workflows still run locally.
    assert daily_report_workflow.run().output == {"report": "Report generated for today"}
    assert data_sync_workflow.run().output == {"status": "synced"}
    # with_options on an existing workflow keeps the schedule.
    assert daily_report_workflow.with_options(name="other").schedule is (
        daily_report_workflow.schedule
    )


# -- Flexible task configuration (the options block) --------------------------------------------


def test_task_options_block_is_accepted():
    calls: list[str] = []

    def fallback_func():
        calls.append("fallback")
        return "fell back"

    def rollback_func():
        calls.append("rollback")

    @task.with_options(
        name="custom_task",
        retry_max_attempts=3,
        retry_delay=0.01,
        retry_backoff=2,
        timeout=30,
        fallback=fallback_func,
        rollback=rollback_func,
        secret_requests=[],
        cache=True,
        metadata=True,
    )
    async def my_task(metadata=None):
        calls.append(metadata.task_name)
        return "ok"

    @workflow
    async def options_wf(ctx: ExecutionContext):
        return await my_task()

    result = options_wf.run()
    assert result.output == "ok"
    assert calls == ["custom_task"]
    assert (my_task.name, my_task.retry_max_attempts, my_task.timeout) == ("custom_task", 3, 30)


# -- Error handling -------------------------------------------------------------------------------


def test_error_handling_retry_then_fallback_lambda():
    attempts: list[int] = []
    cleaned: list[str] = []

    async def cleanup_function():
        cleaned.append("cleanup")

    @task.with_options(
        retry_max_attempts=3,
        retry_delay=0.01,
        retry_backoff=2,
        fallback=lambda: "fallback result",
        rollback=cleanup_function,
    )
    async def risky_task():
        attempts.append(1)
        raise RuntimeError("flaky service")

    @workflow
    async def risky_wf(ctx: ExecutionContext):
        return await risky_task()

    result = risky_wf.run()

    assert result.has_succeeded
    assert result.output == "fallback result"
    assert len(attempts) == 4  # the first try and three retries
    assert cleaned == []  # the fallback succeeded: nothing to roll back
    task_events = kinds(result, "risky_task")
    assert task_events.count("TASK_RETRY_STARTED") == 3
    assert task_events.count("TASK_RETRY_FAILED") == 3
    assert task_events[-2:] == ["TASK_FALLBACK_STARTED", "TASK_FALLBACK_COMPLETED"]
    delays = [e.value["delay"] for e in events_of(result, "TASK_RETRY_STARTED")]
    assert delays == pytest.approx([0.01, 0.02, 0.04])


def test_error_handling_rollback_when_fallback_fails():
    cleaned: list[str] = []

    async def cleanup_function():
        cleaned.append("cleanup")

    def broken_fallback():
        raise LookupError("no fallback either")

    @task.with_options(
        retry_max_attempts=1, retry_delay=0, fallback=broken_fallback, rollback=cleanup_function
    )
    async def risky_task():
        raise RuntimeError("flaky service")

    @workflow
    async def risky_wf(ctx: ExecutionContext):
        return await risky_task()

    result = risky_wf.run()

    assert result.has_failed
    assert cleaned == ["cleanup"]
    assert kinds(result, "risky_task")[-5:] == [
        "TASK_FALLBACK_STARTED",
        "TASK_FALLBACK_FAILED",
        "TASK_ROLLBACK_STARTED",
        "TASK_ROLLBACK_COMPLETED",
        "TASK_FAILED",
    ]


# -- Secrets --------------------------------------------------------------------------------------


def test_secret_management():
    from flux.config import Configuration
    from flux.secrets import LocalSecretStore

    LocalSecretStore.from_settings(Configuration.get().settings).set("API_KEY", "s3cr3t")

    @task.with_options(secret_requests=["API_KEY"])
    async def secure_task(secrets: dict[str, Any] = {}):  # noqa: B006 - the spec's signature
        api_key = secrets["API_KEY"]
        return f"used key of length {len(api_key)}"

    @workflow
    async def secure_wf(ctx: ExecutionContext):
        return await secure_task()

    result = secure_wf.run()

    assert result.output == "used key of length 6"
    # The secret value is never recorded in the log.
    assert all("s3cr3t" not in repr(e.value) for e in result.events)


def test_missing_secret_fails_the_task_naming_it():
    ran: list[bool] = []

    @task.with_options(secret_requests=["MISSING_KEY"])
    async def secure_task(secrets: dict[str, Any] = {}):  # noqa: B006 - the spec's signature
        ran.append(True)

    @workflow
    async def secure_wf(ctx: ExecutionContext):
        return await secure_task()

    result = secure_wf.run()

    assert result.has_failed
    assert ran == []
    assert isinstance(result.output, SecretNotFoundError)
    assert "MISSING_KEY" in str(result.output)
    assert "secure_task" in str(result.output)
    assert kinds(result, "secure_task") == ["TASK_STARTED", "TASK_FAILED"]


# -- Task caching ---------------------------------------------------------------------------------


def test_task_caching_across_executions():
    runs: list[int] = []

    @task.with_options(cache=True)
    async def expensive_computation(input_data):
        runs.append(input_data)
        return input_data * 10

    @workflow
    async def cached_wf(ctx: ExecutionContext[int]):
        return await expensive_computation(ctx.input)

    first = cached_wf.run(4)
    second = cached_wf.run(4)
    third = cached_wf.run(5)

    assert (first.output, second.output, third.output) == (40, 40, 50)
    assert first.execution_id != second.execution_id
    assert runs == [4, 5]  # the second execution with the same argument reused the result


# -- Task metadata --------------------------------------------------------------------------------


def test_task_metadata():
    from flux.decorators import TaskMetadata

    seen: list[TaskMetadata] = []

    @task.with_options(metadata=True)
    async def metadata_aware_task(data, metadata: TaskMetadata = {}):  # noqa: B006 - the spec's signature
        seen.append(metadata)
        return f"{metadata.task_name}:{data}"

    @workflow
    async def metadata_wf(ctx: ExecutionContext):
        return [await metadata_aware_task("a"), await metadata_aware_task("a")]

    result = metadata_wf.run()

    assert result.output == ["metadata_aware_task:a", "metadata_aware_task:a"]
    started = events_of(result, "TASK_STARTED")
    assert [m.task_id for m in seen] == [e.source_id for e in started]
    assert seen[0].task_id != seen[1].task_id
    assert all(isinstance(m, TaskMetadata) for m in seen)


# -- Built-in tasks -------------------------------------------------------------------------------


def test_built_in_tasks_example_pause_and_resume():
    @workflow
    async def built_in_tasks_example(ctx: ExecutionContext):
        start_time = await now()
        await sleep(0.05)
        random_choice = await choice(["option1", "option2", "option3"])
        random_number = await randint(1, 100)
        unique_id = await uuid4()
        approval = await pause("wait_for_approval")
        return {
            "start_time": start_time,
            "choice": random_choice,
            "number": random_number,
            "id": str(unique_id),
            "approval": approval,
        }

    before = datetime.now(UTC)
    paused = built_in_tasks_example.run()

    assert paused.is_paused
    assert not paused.has_finished
    assert paused.output is None
    recorded = {e.name: e.value for e in events_of(paused, "TASK_COMPLETED")}
    assert set(recorded) == {"now", "sleep", "choice", "randint", "uuid4"}
    assert events_of(paused, "TASK_PAUSED")[0].value["name"] == "wait_for_approval"

    resumed = built_in_tasks_example.run("approved", execution_id=paused.execution_id)

    assert resumed.has_succeeded
    out = resumed.output
    # Replay returns the recorded values, not fresh ones.
    assert out["start_time"] == recorded["now"]
    assert before <= out["start_time"] <= datetime.now(UTC)
    assert out["choice"] == recorded["choice"] in {"option1", "option2", "option3"}
    assert out["number"] == recorded["randint"]
    assert 1 <= out["number"] <= 100
    assert out["id"] == str(recorded["uuid4"])
    assert isinstance(recorded["uuid4"], UUID)
    assert out["approval"] == "approved"
    assert len(events_of(resumed, "TASK_COMPLETED")) == 6  # the pause completed too


def test_sleep_accepts_timedelta():
    @workflow
    async def sleeper(ctx: ExecutionContext):
        await sleep(timedelta(milliseconds=20))
        return "awake"

    result = sleeper.run()
    assert result.output == "awake"
    assert events_of(result, "TASK_STARTED")[0].value["seconds"] == pytest.approx(0.02)


# -- Graph ----------------------------------------------------------------------------------------


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


# -- State inspection -----------------------------------------------------------------------------


def test_state_inspection_properties_and_events():
    @task
    async def step(x: int) -> int:
        return x + 1

    @task
    async def boom() -> None:
        raise ValueError("bad value")

    @workflow
    async def ok_wf(ctx: ExecutionContext[int]):
        return await step(ctx.input)

    @workflow
    async def failing_wf(ctx: ExecutionContext):
        await boom()

    @workflow
    async def pausing_wf(ctx: ExecutionContext):
        return await pause("gate")

    def flags(ctx: ExecutionContext[Any]) -> tuple[bool, ...]:
        return (
            ctx.has_finished,
            ctx.has_succeeded,
            ctx.has_failed,
            ctx.is_cancelled,
            ctx.is_paused,
        )

    ok = ok_wf.run(1)
    assert flags(ok) == (True, True, False, False, False)
    assert [(e.type.value, e.name, e.value) for e in ok.events] == [
        ("WORKFLOW_STARTED", "ok_wf", 1),
        ("TASK_STARTED", "step", [1]),
        ("TASK_COMPLETED", "step", 2),
        ("WORKFLOW_COMPLETED", "ok_wf", 2),
    ]
    times = [e.time for e in ok.events]
    assert times == sorted(times)
    assert all(t.tzinfo is not None for t in times)

    failed = failing_wf.run()
    assert flags(failed) == (True, False, True, False, False)
    assert isinstance(failed.output, ValueError)
    assert str(failed.output) == "bad value"

    paused = pausing_wf.run()
    assert flags(paused) == (False, False, False, False, True)

    cancelled = workflow.cancel(paused.execution_id)
    assert flags(cancelled) == (True, False, False, True, False)

    # The spec's "State Management" form: run(execution_id=...) on a finished execution
    # returns its recorded context (state, output, events) without running anything.
    again = ok_wf.run(execution_id=ok.execution_id)
    assert (again.state, again.output) == (ok.state, ok.output)
    assert [e.id for e in again.events] == [e.id for e in ok.events]

    # A stored execution reads back with the same state and events.

    stored = open_store().load(ok.execution_id).ctx
    assert stored.state == ok.state
    assert [(e.id, e.type, e.value) for e in stored.events] == [
        (e.id, e.type, e.value) for e in ok.events
    ]


# -- Cancellation ---------------------------------------------------------------------------------


def test_cancellation_runs_cleanup_and_rollback(tmp_path):
    started = threading.Event()
    ids: list[str] = []
    log: list[str] = []

    async def undo():
        log.append("rollback")

    @task.with_options(rollback=undo)
    async def long_running_task():
        started.set()
        await asyncio.sleep(60)
        log.append("finished")  # never reached

    @task
    async def cleanup():
        log.append("cleanup")

    @workflow
    async def cancellable_workflow(ctx: ExecutionContext):
        ids.append(ctx.execution_id)
        try:
            await long_running_task()
            return "completed"
        except asyncio.CancelledError:
            await cleanup()
            raise

    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(cancellable_workflow.run()))
    thread.start()
    try:
        assert started.wait(30), "the long task did not start"
        cancelled = workflow.cancel(ids[0])
        assert cancelled.execution_id == ids[0]
    finally:
        thread.join(60)
    assert not thread.is_alive()

    result = results[0]
    assert result.is_cancelled
    assert result.has_finished and not result.has_failed
    assert log == ["rollback", "cleanup"]
    assert kinds(result, "long_running_task") == [
        "TASK_STARTED",
        "TASK_ROLLBACK_STARTED",
        "TASK_ROLLBACK_COMPLETED",
        "TASK_CANCELLED",
    ]
    assert kinds(result)[-1] == "WORKFLOW_CANCELLED"

    assert open_store().load(ids[0]).ctx.is_cancelled


# -- Programmatic configuration -------------------------------------------------------------------


def test_programmatic_configuration(monkeypatch):
    from flux.config import Configuration

    monkeypatch.setenv("FLUX_SERVER_PORT", "8123")

    config = Configuration.get()
    assert config.settings.server_port == 8123
    assert config.settings.workers.bootstrap_token is None

    config.override(debug=True, server_port=9000, workers={"bootstrap_token": "test-token"})
    assert config.settings.debug is True
    assert config.settings.server_port == 9000
    assert config.settings.workers.bootstrap_token == "test-token"
    assert config.settings.workers.server_url == "http://localhost:8000"  # merged, not replaced

    config.reload()
    assert config.settings.server_port == 8123  # overrides dropped, the environment read again
    assert config.settings.debug is False

    config.override(server_port=9001)
    config.reset()
    assert config.settings.server_port == 8123
    assert Configuration.get() is config
