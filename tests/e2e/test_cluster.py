"""Real uvicorn server and worker processes: the spec's examples over HTTP, and chaos."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flux.client import FluxClient
from flux.protocol import ExecutionStatus

from tests.support.cluster import FluxCluster, make_cluster, running_cluster, stop_process
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

WORKFLOWS = """
import asyncio
import os
from pathlib import Path

from flux import ExecutionContext, task, workflow
from flux.tasks import call, parallel, pause, pipeline

MARKS = Path(os.environ["FLUX_TEST_MARKS"])


def mark(name: str) -> None:
    with open(MARKS / name, "a") as f:
        f.write("x")


@task
async def say_hello(name: str) -> str:
    return f"Hello, {name}"


@workflow
async def hello_world(ctx: ExecutionContext[str]):
    return await say_hello(ctx.input)


@task
async def say_hi(name: str):
    return f"Hi, {name}"


@task
async def say_hola(name: str):
    return f"Hola, {name}"


@workflow
async def parallel_workflow(ctx: ExecutionContext[str]):
    return await parallel(say_hi(ctx.input), say_hello(ctx.input), say_hola(ctx.input))


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
    return await pipeline(multiply_by_two, add_three, square, input=ctx.input)


@task
async def process_item(item: str):
    return item.upper()


@workflow
async def map_workflow(ctx: ExecutionContext[list[str]]):
    return await process_item.map(ctx.input)


@workflow
async def approval(ctx: ExecutionContext[str]):
    answer = await pause("wait_for_approval")
    return {"input": ctx.input, "answer": answer}


@task
async def step(i: int) -> int:
    mark(f"step{i}")
    return i


@task
async def slow(seconds: float) -> str:
    mark("slow-started")
    await asyncio.sleep(seconds)
    mark("slow-finished")
    return "slow done"


@workflow
async def chaos(ctx: ExecutionContext[float]):
    a = await step(1)
    b = await step(2)
    c = await slow(ctx.input)
    d = await step(3)
    return [a, b, c, d]


@task
async def counted(i: int) -> int:
    mark(f"run-{i}")
    await asyncio.sleep(0.01)
    return i


@workflow
async def race(ctx: ExecutionContext[int]):
    return await counted(ctx.input)


@task
async def forever() -> None:
    await asyncio.sleep(3600)


@task
async def cleanup() -> None:
    mark("cleanup")


@workflow
async def cancellable(ctx: ExecutionContext):
    try:
        await forever()
        return "completed"
    except asyncio.CancelledError:
        await cleanup()
        raise


@task.with_options(cache=True)
async def expensive(x: int) -> int:
    mark("expensive")
    return x * 2


@workflow
async def cached(ctx: ExecutionContext[int]):
    return await expensive(ctx.input)


@workflow
async def child(ctx: ExecutionContext[float]):
    first = await step(10)
    return [first, await slow(ctx.input)]


@workflow
async def parent(ctx: ExecutionContext[float]):
    before = await step(20)
    return [before, await call("child", ctx.input)]


@task
async def blocking(seconds: float) -> str:
    import time

    mark("blocking")
    time.sleep(seconds)  # blocks the worker's event loop, as a heavy import or C call would
    return "unblocked"


@workflow
async def blocks_the_loop(ctx: ExecutionContext[float]):
    return await blocking(ctx.input)


@task
async def boom(x: int) -> int:
    raise ValueError(f"bad value {x}")


@workflow
async def failing(ctx: ExecutionContext[int]):
    return await boom(ctx.input)


@task
async def ephemeral():
    # An object of a class from a module only this process has: pickled by reference, it
    # cannot be read back by another worker process (as with a package only one has).
    import sys, types

    module = types.ModuleType("flux_test_ephemeral")
    exec("class Thing:\\n    pass", module.__dict__)
    sys.modules[module.__name__] = module
    return module.Thing()


@workflow
async def unreadable(ctx: ExecutionContext):
    await ephemeral()
    await pause("then")
    return "never"
"""


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    path = tmp_path / "marks"
    path.mkdir()
    return path


def _cluster(tmp_path: Path, marks: Path, database_url: str | None = None) -> FluxCluster:
    return make_cluster(tmp_path, database_url, FLUX_TEST_MARKS=str(marks))


@contextlib.contextmanager
def _running(
    tmp_path: Path, marks: Path, database_url: str | None = None
) -> Iterator[tuple[FluxCluster, FluxClient]]:
    """A server and worker w1 with :data:`WORKFLOWS` registered; stopped by pid on exit."""
    with (
        running_cluster(
            tmp_path, WORKFLOWS, database_url=database_url, FLUX_TEST_MARKS=str(marks)
        ) as c,
        FluxClient(c.url) as client,
    ):
        yield c, client


@pytest.fixture
def flux(tmp_path: Path, marks: Path):
    with _running(tmp_path, marks) as running:
        yield running


def count(marks: Path, name: str) -> int:
    path = marks / name
    return len(path.read_text()) if path.exists() else 0


def test_spec_examples_run_in_sync_async_and_stream_modes(flux) -> None:
    _, client = flux
    assert client.run("hello_world", "World", mode="sync").output == "Hello, World"
    assert client.run("parallel_workflow", "Ana", mode="sync").output == [
        "Hi, Ana",
        "Hello, Ana",
        "Hola, Ana",
    ]
    assert client.run("pipeline_workflow", 4, mode="sync").output == 121
    assert client.run("map_workflow", ["a", "b"], mode="sync").output == ["A", "B"]

    started = client.run("hello_world", "Async", mode="async")
    assert started.state in ("CREATED", "SCHEDULED", "CLAIMED", "RUNNING", "COMPLETED")
    done = wait_until(
        lambda: (
            (s := client.status("hello_world", started.execution_id)).state == "COMPLETED" and s
        ),
        what="async run to complete",
    )
    assert done.output == "Hello, Async"

    frames = list(client.stream("hello_world", "Stream"))
    assert frames[-1].state == "COMPLETED"
    assert frames[-1].output == "Hello, Stream"
    assert all(f.execution_id == frames[0].execution_id for f in frames)


def test_stream_frames_are_named_as_the_spec_writes_them(flux) -> None:
    c, _ = flux
    with httpx.stream(
        "POST", f"{c.url}/workflows/hello_world/run/stream", json="SSE", timeout=30
    ) as response:
        assert response.status_code == 200
        body = "".join(response.iter_text())
    names = [
        line.split(":", 1)[1].strip() for line in body.splitlines() if line.startswith("event:")
    ]
    assert names[-1] == "workflow.execution.completed"
    assert set(names) <= {"workflow.execution.running", "workflow.execution.completed"}
    data = [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:")]
    assert data[-1]["state"] == "COMPLETED" and data[-1]["output"] == "Hello, SSE"
    assert {"execution_id", "state", "timestamp"} <= set(data[-1])


def test_pause_resume_with_input_and_detailed_status(flux) -> None:
    _, client = flux
    paused = client.run("approval", "doc-1", mode="sync")
    assert paused.state == "PAUSED"
    resumed = client.resume("approval", paused.execution_id, {"approved": True}, mode="sync")
    assert resumed.state == "COMPLETED"
    assert resumed.output == {"input": "doc-1", "answer": {"approved": True}}
    detail = client.status("approval", paused.execution_id, detailed=True)
    types = [e.type for e in detail.events or []]
    assert types[0] == "WORKFLOW_STARTED" and types[-1] == "WORKFLOW_COMPLETED"
    assert "WORKFLOW_PAUSED" in types and "WORKFLOW_RESUMED" in types
    assert client.status("approval", paused.execution_id).events is None


def test_failed_execution_keeps_the_error_type_and_message(flux) -> None:
    _, client = flux
    status = client.run("failing", 7, mode="sync")
    assert status.state == "FAILED"
    assert status.output == {"type": "ValueError", "message": "bad value 7"}


def test_cancel_runs_the_workflows_cleanup_and_ends_cancelled(flux, marks: Path) -> None:
    _, client = flux
    started = client.run("cancellable", None, mode="async")
    wait_until(
        lambda: client.status("cancellable", started.execution_id).state == "RUNNING",
        what="running",
    )
    result = client.cancel("cancellable", started.execution_id, mode="sync")
    assert result.state == "CANCELLED"
    assert count(marks, "cleanup") == 1


def _kill_w1_mid_slow_task_and_finish_on_w2(
    c: FluxCluster, client: FluxClient, workflow: str, started: ExecutionStatus, marks: Path
) -> ExecutionStatus:
    """SIGKILL worker w1 once the slow task has started, start w2, and wait until the
    execution has completed there; its final status."""
    wait_until(lambda: count(marks, "slow-started") == 1, what="the slow task to start")
    os.kill(c.workers["w1"].pid, signal.SIGKILL)
    c.workers["w1"].wait(10)
    c.start_worker("w2")
    return wait_until(
        lambda: (s := client.status(workflow, started.execution_id)).state == "COMPLETED" and s,
        timeout=60,
        what=f"{workflow} to finish on w2",
    )


def test_worker_killed_mid_task_execution_completes_on_another_worker(flux, marks: Path) -> None:
    c, client = flux
    started = client.run("chaos", 2.0, mode="async")
    done = _kill_w1_mid_slow_task_and_finish_on_w2(c, client, "chaos", started, marks)
    assert done.output == [1, 2, "slow done", 3]
    assert count(marks, "step1") == 1 and count(marks, "step2") == 1  # not run again
    assert count(marks, "slow-started") == 2  # the interrupted task ran again
    assert count(marks, "step3") == 1


def test_history_a_worker_cannot_read_fails_the_execution_and_the_worker_goes_on(
    flux, marks: Path
) -> None:
    """A recorded value the next worker cannot unpickle (its class's module is not there):
    the execution ends FAILED saying which value and why, and the worker keeps serving."""
    c, client = flux
    paused = client.run("unreadable", None, mode="sync")
    assert paused.state == "PAUSED"
    stop_process(c.workers.pop("w1"))
    c.start_worker("w2")
    client.resume("unreadable", paused.execution_id, None, mode="async")
    failed = wait_until(
        lambda: (s := client.status("unreadable", paused.execution_id)).state == "FAILED" and s,
        timeout=30,
        what="the execution to fail",
    )
    message = json.dumps(failed.output)
    assert "flux_test_ephemeral" in message and "TASK_COMPLETED" in message, message
    assert client.run("hello_world", "again", mode="sync").output == "Hello, again"


def test_worker_killed_mid_subworkflow_the_parent_waits_for_the_same_child(
    flux, marks: Path
) -> None:
    """The parent calls ``child`` through the server. Kill the worker while the child's slow
    task runs: on the next worker the parent replays its call and gets the same child (its id
    derives from the parent's), which replays too; no second child is started."""
    c, client = flux
    started = client.run("parent", 2.0, mode="async")
    done = _kill_w1_mid_slow_task_and_finish_on_w2(c, client, "parent", started, marks)
    assert done.output == [20, [10, "slow done"]]
    assert count(marks, "step20") == 1 and count(marks, "step10") == 1  # nothing ran twice
    assert count(marks, "slow-started") == 2  # but the interrupted task, in the same child
    detail = client.status("parent", started.execution_id, detailed=True)
    (child_id,) = [
        e.view["execution_id"] for e in detail.events or [] if e.name == "call:child"
        if e.type == "TASK_STARTED"
    ]  # fmt: skip
    assert client.status("child", child_id).output == [10, "slow done"]


def test_server_killed_and_restarted_mid_run_execution_completes(flux, marks: Path) -> None:
    c, client = flux
    started = client.run("chaos", 3.0, mode="async")
    wait_until(lambda: count(marks, "slow-started") == 1, what="the slow task to start")
    assert c.server is not None
    os.kill(c.server.pid, signal.SIGKILL)
    c.server.wait(10)
    c.start_server()
    done = wait_until(
        lambda: (s := client.status("chaos", started.execution_id)).state == "COMPLETED" and s,
        timeout=60,
        what="the execution to finish after the restart",
    )
    assert done.output == [1, 2, "slow done", 3]
    assert count(marks, "step1") == 1 and count(marks, "step2") == 1
    detail = client.status("chaos", started.execution_id, detailed=True)
    ids = [e.id for e in detail.events or []]
    assert len(ids) == len(set(ids))
    assert [e.type for e in detail.events or []].count("WORKFLOW_COMPLETED") == 1


def test_two_workers_racing_never_run_an_execution_twice(flux, marks: Path) -> None:
    c, client = flux
    c.start_worker("w2")
    ids = [client.run("race", i, mode="async").execution_id for i in range(40)]
    for execution_id in ids:
        wait_until(
            lambda eid=execution_id: client.status("race", eid).state == "COMPLETED",
            what=f"execution {execution_id}",
        )
    assert all(count(marks, f"run-{i}") == 1 for i in range(40))


def test_task_blocking_the_event_loop_past_the_heartbeat_timeout_runs_once(
    flux, marks: Path
) -> None:
    """The cluster's heartbeat timeout is 3 s; the task holds the worker's event loop for 4.5 s.
    The keepalive thread heartbeats meanwhile, so the server keeps the worker alive instead of
    requeueing the execution and running the task a second time."""
    c, client = flux
    done = client.run("blocks_the_loop", 4.5, mode="sync")
    assert (done.state, done.output) == ("COMPLETED", "unblocked")
    assert count(marks, "blocking") == 1
    server_log = (c.home / "server.log").read_text()
    assert "declared dead" not in server_log
    assert "event loop blocked" in (c.home / "worker-w1.log").read_text()


def test_cached_task_runs_once_across_executions_on_a_worker(flux, marks: Path) -> None:
    _, client = flux
    assert client.run("cached", 21, mode="sync").output == 42
    assert client.run("cached", 21, mode="sync").output == 42
    assert count(marks, "expensive") == 1


def test_workers_endpoint_reports_resources(flux) -> None:
    c, _ = flux
    workers = httpx.get(f"{c.url}/workers").json()
    (w1,) = [w for w in workers if w["name"] == "w1"]
    assert w1["connected"] is True
    assert w1["resources"]["cpu_count"] >= 1
    assert w1["resources"]["memory_total"] > 0
    assert w1["resources"]["gpus"] == []  # no GPU on CI: detected as none, not an error
    assert any(p["name"] == "flux-sdk" for p in w1["packages"])
    # Stopped, it says so: disconnected at once, not after the 15 s of missed heartbeats.
    assert stop_process(c.workers["w1"]) == 0
    (w1,) = [w for w in httpx.get(f"{c.url}/workers").json() if w["name"] == "w1"]
    assert w1["connected"] is False
    assert "declared dead" not in (c.home / "server.log").read_text()


def test_worker_with_a_wrong_bootstrap_token_exits_with_one_line(tmp_path: Path, marks) -> None:
    c = _cluster(tmp_path, marks)
    try:
        c.start_server()
        import subprocess
        import sys

        out = subprocess.run(
            [sys.executable, "-m", "flux_worker", "bad", "--server-url", c.url, "--token", "nope"],
            env=c.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode != 0
        assert "Traceback" not in out.stderr
        assert "token" in out.stderr.lower()
    finally:
        c.stop()


def test_sigterm_drains_the_worker(flux, marks: Path) -> None:
    c, client = flux
    started = client.run("chaos", 0.5, mode="async")
    wait_until(lambda: count(marks, "slow-started") == 1, what="the slow task to start")
    stop_process(c.workers["w1"], signal.SIGTERM, grace=20)
    assert c.workers["w1"].returncode == 0
    status = client.status("chaos", started.execution_id)
    assert status.state == "COMPLETED"  # finished within the drain timeout


def test_subprocess_isolation_runs_replays_and_cancels(tmp_path: Path, marks: Path) -> None:
    c = _cluster(tmp_path, marks)
    try:
        c.start_server()
        c.start_worker("iso", "--isolation", "subprocess")
        source = tmp_path / "workflows.py"
        source.write_text(WORKFLOWS)
        with FluxClient(c.url) as client:
            client.register_workflows(source)
            assert client.run("parallel_workflow", "Iso", mode="sync").output == [
                "Hi, Iso",
                "Hello, Iso",
                "Hola, Iso",
            ]
            paused = client.run("approval", "doc", mode="sync")
            assert paused.state == "PAUSED"
            done = client.resume("approval", paused.execution_id, "yes", mode="sync")
            assert done.output == {"input": "doc", "answer": "yes"}
            assert client.run("cached", 5, mode="sync").output == 10
            assert client.run("cached", 5, mode="sync").output == 10
            assert count(marks, "expensive") == 1  # children share the worker's cache
            failed = client.run("failing", 3, mode="sync")
            assert failed.output == {"type": "ValueError", "message": "bad value 3"}
            # Each run has a fresh child: a value of a class only the first had fails the
            # resume (the execution, not the worker).
            paused = client.run("unreadable", None, mode="sync")
            failed = client.resume("unreadable", paused.execution_id, None, mode="sync")
            assert failed.state == "FAILED" and "flux_test_ephemeral" in json.dumps(failed.output)
            started = client.run("cancellable", None, mode="async")
            wait_until(
                lambda: client.status("cancellable", started.execution_id).state == "RUNNING",
                what="running in the child",
            )
            assert client.cancel("cancellable", started.execution_id, mode="sync").state == (
                "CANCELLED"
            )
            assert count(marks, "cleanup") == 1
    finally:
        c.stop()


@pytest.mark.postgres
def test_on_postgres_a_killed_workers_run_and_a_resume_replay_their_history(
    tmp_path: Path, marks: Path, pg_url: str
) -> None:
    """On PostgreSQL the history a replaying worker gets is built by the database: a worker
    killed mid-task leaves its run to another, which replays the finished tasks without
    running them again; a paused run resumes with its input."""
    with _running(tmp_path, marks, pg_url) as (c, client):
        started = client.run("chaos", 2.0, mode="async")
        done = _kill_w1_mid_slow_task_and_finish_on_w2(c, client, "chaos", started, marks)
        assert done.output == [1, 2, "slow done", 3]
        assert count(marks, "step1") == 1 and count(marks, "step2") == 1
        paused = client.run("approval", "doc", mode="sync")
        resumed = client.resume("approval", paused.execution_id, "yes", mode="sync")
        assert (resumed.state, resumed.output) == ("COMPLETED", {"input": "doc", "answer": "yes"})
