"""Crashes and resumes across real processes: a crash during a task's retries, its fallback
or its rollback resumes at the interrupted step, and what finished does not run again.

Each test writes a workflow module (``wfmod.py``) and small scripts to ``tmp_path`` and runs
them with this interpreter (helpers in ``sdk_support``); every process uses the test's
SQLite file. Side effects are counted in files next to the scripts.
"""

from __future__ import annotations

import json

from flux.local import open_store
from sdk_support import kill_hard, side_effects, wait_for_marker, write_scripts


def test_crash_during_retries_resumes_at_the_interrupted_attempt(scripts):
    write_scripts(
        scripts,
        """
    @task.with_options(retry_max_attempts=5, retry_delay=0, retry_backoff=1)
    async def flaky() -> str:
        n = bump("flaky")
        if n <= 2:
            raise ConnectionError(f"call {n} failed")
        if n == 3:
            mark("inside_attempt")
            await asyncio.sleep(60)
        return f"succeeded on call {n}"


    @workflow
    async def retrying(ctx: ExecutionContext):
        mark("execution_id", ctx.execution_id)
        return await flaky()
""",
    )
    proc = scripts.start("run.py", "retrying")
    wait_for_marker(scripts, proc, "inside_attempt")
    execution_id = (scripts.folder / "execution_id").read_text()
    kill_hard(proc)

    result = json.loads(scripts.run("resume.py", "retrying", execution_id))

    assert result["output"] == "succeeded on call 4"
    assert side_effects(scripts, "flaky") == 4
    events = open_store().load(execution_id).ctx.events
    attempts = [e.value["attempt"] for e in events if e.type.value == "TASK_RETRY_STARTED"]
    assert attempts == [1, 2]  # attempt 2 was interrupted and ran again as attempt 2
    types = [e.type.value for e in events if e.name == "flaky"]
    assert types.count("TASK_RETRY_FAILED") == 1
    assert types[-2:] == ["TASK_RETRY_COMPLETED", "TASK_COMPLETED"]


RECOVERY = """
    @task.with_options(retry_max_attempts=1, retry_delay=0, fallback=lambda n: slow_fallback(n))
    async def charge(n: int) -> str:
        bump("charge")
        raise ValueError(f"card declined {n}")


    async def slow_fallback(n: int) -> str:
        if bump("fallback") == 1:
            mark("inside_fallback")
            await asyncio.sleep(60)
        return f"queued {n}"


    def undo(n: int) -> None:
        if bump("rollback") == 1:
            mark("inside_rollback")
            import time

            time.sleep(60)


    @task.with_options(rollback=undo)
    async def reserve(n: int) -> str:
        bump("reserve")
        raise RuntimeError(f"no stock for {n}")


    @workflow
    async def with_fallback(ctx: ExecutionContext[int]):
        mark("execution_id", ctx.execution_id)
        return await charge(ctx.input)


    @workflow
    async def with_rollback(ctx: ExecutionContext[int]):
        mark("execution_id", ctx.execution_id)
        return await reserve(ctx.input)
"""


def test_a_crash_inside_a_fallback_does_not_run_the_attempts_again(scripts):
    write_scripts(scripts, RECOVERY)
    proc = scripts.start("run.py", "with_fallback", "5")
    wait_for_marker(scripts, proc, "inside_fallback")
    execution_id = (scripts.folder / "execution_id").read_text()
    assert side_effects(scripts, "charge") == 2  # the first attempt and its retry
    kill_hard(proc)

    result = json.loads(scripts.run("resume.py", "with_fallback", execution_id))

    assert result == {"id": execution_id, "state": "COMPLETED", "output": "queued 5"}
    assert side_effects(scripts, "charge") == 2  # every attempt had failed: none runs again
    assert side_effects(scripts, "fallback") == 2  # the interrupted fallback runs again
    types = [e.type.value for e in open_store().load(execution_id).ctx.events]
    assert types.count("TASK_RETRY_STARTED") == 1
    assert types.count("TASK_FALLBACK_COMPLETED") == 1


def test_a_crash_inside_a_rollback_does_not_run_the_task_again(scripts):
    write_scripts(scripts, RECOVERY)
    proc = scripts.start("run.py", "with_rollback", "9")
    wait_for_marker(scripts, proc, "inside_rollback")
    execution_id = (scripts.folder / "execution_id").read_text()
    kill_hard(proc)

    result = json.loads(scripts.run("resume.py", "with_rollback", execution_id))

    assert result["state"] == "FAILED"
    assert "no stock for 9" in result["output"]  # the task's own error, not a placeholder
    assert side_effects(scripts, "reserve") == 1
    assert side_effects(scripts, "rollback") == 2
    types = [e.type.value for e in open_store().load(execution_id).ctx.events]
    assert types.count("TASK_ROLLBACK_COMPLETED") == 1
    assert types[-2:] == ["TASK_FAILED", "WORKFLOW_FAILED"]
