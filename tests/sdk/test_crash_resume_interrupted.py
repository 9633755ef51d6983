"""Crashes and resumes across real processes sharing one SQLite file: a process killed
(SIGKILL) or interrupted (Ctrl-C) mid-run, and the execution resumed in another.

Each test writes a workflow module (``wfmod.py``) and small scripts to ``tmp_path`` and runs
them with this interpreter (helpers in ``sdk_support``); every process uses the test's
SQLite file. Side effects are counted in files next to the scripts.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from flux import ExecutionContext, workflow
from flux.errors import ExecutionStateError
from flux.local import open_store
from sdk_support import kill_hard, row_counts, side_effects, wait_for_marker, write_scripts

CRASHY = """
    @task
    async def prepare(order: str) -> dict:
        bump("prepare")
        return {"order": order, "items": 3}


    @task
    async def long_step(data: dict) -> int:
        if bump("long_step") == 1:
            mark("inside_long_step")
            await asyncio.sleep(60)
        return data["items"] * 10


    @task
    async def finish(total: int) -> str:
        bump("finish")
        return f"total={total}"


    @workflow
    async def crashy(ctx: ExecutionContext[str]):
        mark("execution_id", ctx.execution_id)
        data = await prepare(ctx.input)
        total = await long_step(data)
        return await finish(total)
"""


def test_sigkill_mid_workflow_then_resume_in_another_process(scripts, db_path):
    write_scripts(scripts, CRASHY)
    proc = scripts.start("run.py", "crashy", '"order-1"')
    wait_for_marker(scripts, proc, "inside_long_step")
    execution_id = (scripts.folder / "execution_id").read_text()

    # While the first process lives, nobody else may resume it, and trying writes nothing.
    @workflow.with_options(name="crashy")
    async def impostor(ctx: ExecutionContext):
        raise AssertionError("must not run")

    counts = row_counts(db_path)
    with pytest.raises(ExecutionStateError, match=f"running in process {proc.pid}"):
        impostor.run(execution_id=execution_id)
    assert row_counts(db_path) == counts

    kill_hard(proc)
    crashed = open_store().load(execution_id).ctx
    assert crashed.is_running
    assert [e.name for e in crashed.events if e.type.value == "TASK_COMPLETED"] == ["prepare"]

    result = json.loads(scripts.run("resume.py", "crashy", execution_id))

    assert result == {"id": execution_id, "state": "COMPLETED", "output": "total=30"}
    assert side_effects(scripts, "prepare") == 1  # finished before the crash: not run again
    assert side_effects(scripts, "long_step") == 2  # interrupted: ran again
    assert side_effects(scripts, "finish") == 1
    done = open_store().load(execution_id).ctx
    assert done.has_succeeded and done.output == "total=30"
    started = [e.name for e in done.events if e.type.value == "TASK_STARTED"]
    assert started == ["prepare", "long_step", "finish"]  # the rerun did not log a new start
    assert [e.type.value for e in done.events].count("WORKFLOW_STARTED") == 1


def test_sigkill_during_a_map_keeps_the_branches_that_finished(scripts):
    """Completions of parallel branches are group-committed: each is durable all the same."""
    write_scripts(
        scripts,
        """
    @task
    async def square(x: int) -> int:
        n = bump(f"square{x}")
        if x == 3 and n == 1:
            # Wait until every other branch has finished, then signal and hang.
            while sum((HERE / f"count.square{i}").exists() for i in range(6)) < 6:
                await asyncio.sleep(0.01)
            # Their group write was scheduled when they returned: it runs before we resume.
            await asyncio.sleep(0)
            mark("inside_square3")
            await asyncio.sleep(60)
        return x * x


    @workflow
    async def squares(ctx: ExecutionContext):
        mark("execution_id", ctx.execution_id)
        return await square.map(range(6))
""",
    )
    proc = scripts.start("run.py", "squares")
    wait_for_marker(scripts, proc, "inside_square3")
    execution_id = (scripts.folder / "execution_id").read_text()
    kill_hard(proc)
    completed = [
        e.value
        for e in open_store().load(execution_id).ctx.events
        if e.type.value == "TASK_COMPLETED"
    ]
    assert sorted(completed) == [0, 1, 4, 16, 25]

    result = json.loads(scripts.run("resume.py", "squares", execution_id))

    assert result["output"] == [0, 1, 4, 9, 16, 25]
    assert [side_effects(scripts, f"square{i}") for i in range(6)] == [1, 1, 1, 2, 1, 1]


def test_resume_after_a_crash_before_any_task(scripts):
    """A process that died right after WORKFLOW_STARTED: the resume runs everything once."""
    write_scripts(
        scripts,
        """
    @task
    async def only() -> str:
        bump("only")
        return "done"


    @workflow
    async def early(ctx: ExecutionContext):
        mark("execution_id", ctx.execution_id)
        if not (HERE / "go").exists():
            mark("waiting")
            await asyncio.sleep(60)
        return await only()
""",
    )
    proc = scripts.start("run.py", "early")
    wait_for_marker(scripts, proc, "waiting")
    execution_id = (scripts.folder / "execution_id").read_text()
    kill_hard(proc)
    (scripts.folder / "go").write_text("")

    result = json.loads(scripts.run("resume.py", "early", execution_id))
    assert result["output"] == "done"
    assert side_effects(scripts, "only") == 1


def test_ctrl_c_leaves_the_execution_resumable(scripts, db_path):
    write_scripts(scripts, CRASHY)
    proc = scripts.start("run.py", "crashy", '"order-2"')
    wait_for_marker(scripts, proc, "inside_long_step")
    execution_id = (scripts.folder / "execution_id").read_text()

    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err

    interrupted = open_store().load(execution_id)
    assert interrupted.ctx.state.value == "RUNNING"  # not CANCELLED: only a cancel cancels
    assert not interrupted.owner_alive
    assert not any(e.type.value == "TASK_CANCELLED" for e in interrupted.ctx.events)

    result = json.loads(scripts.run("resume.py", "crashy", execution_id))
    assert result == {"id": execution_id, "state": "COMPLETED", "output": "total=30"}
    assert side_effects(scripts, "prepare") == 1
    assert side_effects(scripts, "long_step") == 2
