"""The spec's chapters on tasks (flux-core 0.18 README): every SDK code block of task
options, error handling, secrets, caching, metadata and built-in tasks, run with asserted
results.

Delays in the blocks (retry_delay=1, sleep(2.5)) are shortened so the suite stays fast; the
shape of each block is kept.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from flux import ExecutionContext, task, workflow
from flux.errors import SecretNotFoundError
from flux.tasks import choice, now, pause, randint, sleep, uuid4
from sdk_support import events_of, kinds

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
