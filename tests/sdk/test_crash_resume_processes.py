"""Executions across real processes sharing one SQLite file: paused in one and resumed with
input in another, cancelled from another, and the database closed at a process's exit.

Each test writes a workflow module (``wfmod.py``) and small scripts to ``tmp_path`` and runs
them with this interpreter (helpers in ``sdk_support``); every process uses the test's
SQLite file. Side effects are counted in files next to the scripts.
"""

from __future__ import annotations

import json
import subprocess
import sys

from flux import workflow
from flux.local import open_store
from sdk_support import side_effects, wait_for_marker, write_scripts


def test_pause_in_one_process_resume_with_input_in_another(scripts):
    write_scripts(
        scripts,
        """
    from flux.tasks import pause


    @task
    async def prepare(order: str) -> str:
        bump("prepare")
        return order.upper()


    @workflow
    async def approval(ctx: ExecutionContext[str]):
        order = await prepare(ctx.input)
        decision = await pause("approve")
        return {"order": order, "decision": decision}
""",
    )
    first = json.loads(scripts.run("run.py", "approval", '"order-7"'))
    assert first["state"] == "PAUSED"
    assert first["output"] is None

    second = json.loads(
        scripts.run("resume.py", "approval", first["id"], '{"approved": true, "by": "ops"}')
    )

    assert second["state"] == "COMPLETED"
    assert second["output"] == {"order": "ORDER-7", "decision": {"approved": True, "by": "ops"}}
    assert side_effects(scripts, "prepare") == 1


def test_cancel_from_another_process(scripts):
    write_scripts(
        scripts,
        """
    async def undo() -> None:
        bump("rollback")


    @task.with_options(rollback=undo)
    async def long_running_task() -> str:
        mark("inside_long_task")
        await asyncio.sleep(60)
        return "completed"


    @task
    async def cleanup() -> None:
        bump("cleanup")


    @workflow
    async def cancellable(ctx: ExecutionContext):
        mark("execution_id", ctx.execution_id)
        try:
            return await long_running_task()
        except asyncio.CancelledError:
            await cleanup()
            raise
""",
    )
    proc = scripts.start("run.py", "cancellable")
    wait_for_marker(scripts, proc, "inside_long_task")
    execution_id = (scripts.folder / "execution_id").read_text()

    requested = workflow.cancel(execution_id)
    assert requested.is_running  # the owner unwinds it; the request itself returns at once

    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["state"] == "CANCELLED"
    assert (side_effects(scripts, "rollback"), side_effects(scripts, "cleanup")) == (1, 1)
    stored = open_store().load(execution_id).ctx
    assert stored.is_cancelled
    assert [e.type.value for e in stored.events if e.name == "long_running_task"] == [
        "TASK_STARTED",
        "TASK_ROLLBACK_STARTED",
        "TASK_ROLLBACK_COMPLETED",
        "TASK_CANCELLED",
    ]


def test_a_process_that_ran_workflows_closes_its_database_at_exit(scripts):
    """Python 3.13 reports a SQLite connection left to the garbage collector (in development
    mode a user's app sees it at exit): the shared store is closed when the process exits."""
    write_scripts(
        scripts,
        """
    @task
    async def add_one(n: int) -> int:
        return n + 1


    @workflow
    async def quick(ctx: ExecutionContext[int]):
        return await add_one(ctx.input)
""",
    )
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "run.py", "quick", "1"],
        cwd=scripts.folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["output"] == 2
    assert "ResourceWarning" not in proc.stderr
