"""Crashes and resumes across real processes sharing one SQLite file.

Each test writes a workflow module (``wfmod.py``) and small scripts to ``tmp_path`` and runs
them with this interpreter; the isolated ``FLUX_*`` environment of the test is inherited, so
every process uses the same database. Side effects are counted in files next to the scripts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from flux import ExecutionContext, workflow
from flux.errors import ExecutionStateError
from flux.local import open_store
from sdk_support import Scripts, row_counts

from tests.support.waiting import wait_until

COMMON = """
    import asyncio
    import os
    from pathlib import Path

    from flux import ExecutionContext, task, workflow

    HERE = Path(__file__).parent


    def bump(name: str) -> int:
        with open(HERE / f"count.{name}", "a") as fh:
            fh.write("x")
        return len((HERE / f"count.{name}").read_text())


    def mark(name: str, text: str = "") -> None:
        tmp = HERE / f"{name}.tmp"
        tmp.write_text(text)
        tmp.replace(HERE / name)
"""

RUN = """
    import json, signal, sys
    import wfmod

    # Ctrl-C as in a terminal: started from a background job (`make test &`), this process
    # would inherit SIGINT ignored, and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    wf = getattr(wfmod, sys.argv[1])
    arg = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
    ctx = wf.run(arg)
    print(json.dumps({"id": ctx.execution_id, "state": ctx.state.value, "output": ctx.output},
                     default=repr))
"""

RESUME = """
    import json, sys
    import wfmod

    wf = getattr(wfmod, sys.argv[1])
    arg = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    ctx = wf.run(arg, execution_id=sys.argv[2])
    print(json.dumps({"id": ctx.execution_id, "state": ctx.state.value, "output": ctx.output},
                     default=repr))
"""


def _setup(scripts: Scripts, body: str) -> None:
    scripts.module(COMMON + body)
    scripts.write("run.py", RUN)
    scripts.write("resume.py", RESUME)


def _count(scripts: Scripts, name: str) -> int:
    path = scripts.folder / f"count.{name}"
    return len(path.read_text()) if path.exists() else 0


def _wait_for_marker(scripts: Scripts, proc, name: str) -> None:
    def ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process exited {proc.returncode} early:\n{out}\n{err}")
        return (scripts.folder / name).exists()

    wait_until(ready, timeout=60, what=f"marker {name!r}")


def _kill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)  # reap it: a zombie still answers kill(pid, 0)
    assert proc.returncode == -signal.SIGKILL


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
    _setup(scripts, CRASHY)
    proc = scripts.start("run.py", "crashy", '"order-1"')
    _wait_for_marker(scripts, proc, "inside_long_step")
    execution_id = (scripts.folder / "execution_id").read_text()

    # While the first process lives, nobody else may resume it, and trying writes nothing.
    @workflow.with_options(name="crashy")
    async def impostor(ctx: ExecutionContext):
        raise AssertionError("must not run")

    counts = row_counts(db_path)
    with pytest.raises(ExecutionStateError, match=f"running in process {proc.pid}"):
        impostor.run(execution_id=execution_id)
    assert row_counts(db_path) == counts

    _kill(proc)
    crashed = open_store().load(execution_id).ctx
    assert crashed.is_running
    assert [e.name for e in crashed.events if e.type.value == "TASK_COMPLETED"] == ["prepare"]

    result = json.loads(scripts.run("resume.py", "crashy", execution_id))

    assert result == {"id": execution_id, "state": "COMPLETED", "output": "total=30"}
    assert _count(scripts, "prepare") == 1  # finished before the crash: not run again
    assert _count(scripts, "long_step") == 2  # interrupted: ran again
    assert _count(scripts, "finish") == 1
    done = open_store().load(execution_id).ctx
    assert done.has_succeeded and done.output == "total=30"
    started = [e.name for e in done.events if e.type.value == "TASK_STARTED"]
    assert started == ["prepare", "long_step", "finish"]  # the rerun did not log a new start
    assert [e.type.value for e in done.events].count("WORKFLOW_STARTED") == 1


def test_pause_in_one_process_resume_with_input_in_another(scripts):
    _setup(
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
    assert _count(scripts, "prepare") == 1


TYPED = """
    from dataclasses import dataclass
    from datetime import UTC, date, datetime, timedelta
    from decimal import Decimal
    from enum import IntEnum, StrEnum
    from uuid import UUID

    from pydantic import BaseModel

    from flux.tasks import pause


    @dataclass(frozen=True)
    class Point:
        x: int
        y: float


    class Person(BaseModel):
        name: str
        born: date
        tags: list[str]


    class Color(StrEnum):
        RED = "red"


    class Level(IntEnum):
        HIGH = 3


    class Boom(Exception):
        pass


    class CodedError(Exception):
        def __init__(self, code: int, message: str) -> None:
            super().__init__(message)
            self.code = code


    def samples() -> dict:
        return {
            "datetime": datetime(2024, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
            "naive_datetime": datetime(2024, 1, 2, 3, 4, 5),
            "date": date(2024, 2, 29),
            "timedelta": timedelta(minutes=90),
            "uuid": UUID("12345678-1234-5678-1234-567812345678"),
            "tuple": (1, "a", (2, 3)),
            "set": {1, 2, 3},
            "frozenset": frozenset({"a", "b"}),
            "decimal": Decimal("1.10"),
            "bytes": b"\\x00\\xff",
            "dataclass": Point(1, 2.5),
            "model": Person(name="Ada", born=date(1815, 12, 10), tags=["math"]),
            "str_enum": Color.RED,
            "int_enum": Level.HIGH,
            "odd_keys": {1: "int key", (1, 2): "tuple key"},
            "nested": {"when": [datetime(2020, 5, 6, tzinfo=UTC)], "ids": (UUID(int=1),)},
        }


    def same(value, expected) -> bool:
        if type(value) is not type(expected) or value != expected:
            return False
        return str(value) == str(expected) if isinstance(value, Decimal) else True


    @task
    async def produce(kind: str):
        bump("produce")
        return samples()[kind]


    @task
    async def explode() -> None:
        raise Boom("kaboom")


    @task
    async def explode_coded() -> None:
        raise CodedError(409, "conflict")


    @workflow
    async def typed(ctx: ExecutionContext):
        values = {kind: await produce(kind) for kind in sorted(samples())}
        try:
            await explode()
            error = None
        except Boom as exc:
            error = exc
        try:
            await explode_coded()
        except CodedError as exc:
            coded = [type(exc).__qualname__, exc.code, str(exc)]
        await pause("go")
        report = {k: [type(v).__qualname__, same(v, samples()[k])] for k, v in values.items()}
        report["input"] = [type(ctx.input).__qualname__, same(ctx.input, samples())]
        report["error"] = [type(error).__qualname__, str(error)]
        report["coded"] = coded
        return report
"""


@pytest.mark.parametrize("serializer", ["pkl", "json"])
def test_values_keep_their_types_through_a_resume_in_a_new_process(
    scripts, serializer, monkeypatch
):
    monkeypatch.setenv("FLUX_SERIALIZER", serializer)
    _setup(scripts, TYPED)
    scripts.write(
        "start.py",
        """
        import wfmod

        ctx = wfmod.typed.run(wfmod.samples())
        print(ctx.execution_id, ctx.state.value)
        """,
    )
    execution_id, state = scripts.run("start.py").split()
    assert state == "PAUSED"
    produced = _count(scripts, "produce")

    result = json.loads(scripts.run("resume.py", "typed", execution_id))

    assert result["state"] == "COMPLETED"
    report = result["output"]
    assert report.pop("error") == ["Boom", "kaboom"]
    assert report.pop("coded") == ["CodedError", 409, "conflict"]
    wrong = {kind: got for kind, got in report.items() if got[1] is not True}
    assert wrong == {}, f"values that lost their type or value with {serializer}: {wrong}"
    assert len(report) == 17
    assert _count(scripts, "produce") == produced == 16  # the resume replayed every value


def test_crash_during_retries_resumes_at_the_interrupted_attempt(scripts):
    _setup(
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
    _wait_for_marker(scripts, proc, "inside_attempt")
    execution_id = (scripts.folder / "execution_id").read_text()
    _kill(proc)

    result = json.loads(scripts.run("resume.py", "retrying", execution_id))

    assert result["output"] == "succeeded on call 4"
    assert _count(scripts, "flaky") == 4
    events = open_store().load(execution_id).ctx.events
    attempts = [e.value["attempt"] for e in events if e.type.value == "TASK_RETRY_STARTED"]
    assert attempts == [1, 2]  # attempt 2 was interrupted and ran again as attempt 2
    types = [e.type.value for e in events if e.name == "flaky"]
    assert types.count("TASK_RETRY_FAILED") == 1
    assert types[-2:] == ["TASK_RETRY_COMPLETED", "TASK_COMPLETED"]


def test_cancel_from_another_process(scripts):
    _setup(
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
    _wait_for_marker(scripts, proc, "inside_long_task")
    execution_id = (scripts.folder / "execution_id").read_text()

    requested = workflow.cancel(execution_id)
    assert requested.is_running  # the owner unwinds it; the request itself returns at once

    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["state"] == "CANCELLED"
    assert (_count(scripts, "rollback"), _count(scripts, "cleanup")) == (1, 1)
    stored = open_store().load(execution_id).ctx
    assert stored.is_cancelled
    assert [e.type.value for e in stored.events if e.name == "long_running_task"] == [
        "TASK_STARTED",
        "TASK_ROLLBACK_STARTED",
        "TASK_ROLLBACK_COMPLETED",
        "TASK_CANCELLED",
    ]


def test_sigkill_during_a_map_keeps_the_branches_that_finished(scripts):
    """Completions of parallel branches are group-committed: each is durable all the same."""
    _setup(
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
    _wait_for_marker(scripts, proc, "inside_square3")
    execution_id = (scripts.folder / "execution_id").read_text()
    _kill(proc)
    completed = [
        e.value
        for e in open_store().load(execution_id).ctx.events
        if e.type.value == "TASK_COMPLETED"
    ]
    assert sorted(completed) == [0, 1, 4, 16, 25]

    result = json.loads(scripts.run("resume.py", "squares", execution_id))

    assert result["output"] == [0, 1, 4, 9, 16, 25]
    assert [_count(scripts, f"square{i}") for i in range(6)] == [1, 1, 1, 2, 1, 1]


def test_resume_after_a_crash_before_any_task(scripts):
    """A process that died right after WORKFLOW_STARTED: the resume runs everything once."""
    _setup(
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
    _wait_for_marker(scripts, proc, "waiting")
    execution_id = (scripts.folder / "execution_id").read_text()
    _kill(proc)
    (scripts.folder / "go").write_text("")

    result = json.loads(scripts.run("resume.py", "early", execution_id))
    assert result["output"] == "done"
    assert _count(scripts, "only") == 1


def test_ctrl_c_leaves_the_execution_resumable(scripts, db_path):
    _setup(scripts, CRASHY)
    proc = scripts.start("run.py", "crashy", '"order-2"')
    _wait_for_marker(scripts, proc, "inside_long_step")
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
    assert _count(scripts, "prepare") == 1
    assert _count(scripts, "long_step") == 2


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
    _setup(scripts, RECOVERY)
    proc = scripts.start("run.py", "with_fallback", "5")
    _wait_for_marker(scripts, proc, "inside_fallback")
    execution_id = (scripts.folder / "execution_id").read_text()
    assert _count(scripts, "charge") == 2  # the first attempt and its retry
    _kill(proc)

    result = json.loads(scripts.run("resume.py", "with_fallback", execution_id))

    assert result == {"id": execution_id, "state": "COMPLETED", "output": "queued 5"}
    assert _count(scripts, "charge") == 2  # every attempt had failed: none runs again
    assert _count(scripts, "fallback") == 2  # the interrupted fallback runs again
    types = [e.type.value for e in open_store().load(execution_id).ctx.events]
    assert types.count("TASK_RETRY_STARTED") == 1
    assert types.count("TASK_FALLBACK_COMPLETED") == 1


def test_a_crash_inside_a_rollback_does_not_run_the_task_again(scripts):
    _setup(scripts, RECOVERY)
    proc = scripts.start("run.py", "with_rollback", "9")
    _wait_for_marker(scripts, proc, "inside_rollback")
    execution_id = (scripts.folder / "execution_id").read_text()
    _kill(proc)

    result = json.loads(scripts.run("resume.py", "with_rollback", execution_id))

    assert result["state"] == "FAILED"
    assert "no stock for 9" in result["output"]  # the task's own error, not a placeholder
    assert _count(scripts, "reserve") == 1
    assert _count(scripts, "rollback") == 2
    types = [e.type.value for e in open_store().load(execution_id).ctx.events]
    assert types.count("TASK_ROLLBACK_COMPLETED") == 1
    assert types[-2:] == ["TASK_FAILED", "WORKFLOW_FAILED"]


def test_a_process_that_ran_workflows_closes_its_database_at_exit(scripts):
    """Python 3.13 reports a SQLite connection left to the garbage collector (in development
    mode a user's app sees it at exit): the shared store is closed when the process exits."""
    _setup(
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
