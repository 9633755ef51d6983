"""Metrics of a real uvicorn server and a real worker process (``--metrics-port``), scraped
over HTTP and parsed as Prometheus reads them: each counter moves by exactly the runs made
(SQLite and PostgreSQL; in-process and subprocess isolation)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from flux.client import FluxClient
from flux.domain import ExecutionState

from tests.support.cluster import FluxCluster, clean_env, free_port, make_cluster
from tests.support.prometheus import Scrape, delta, parse
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

WORKFLOWS = """
from flux import ExecutionContext, task, workflow
from flux.tasks import pause

attempts: dict[str, int] = {}


@task
async def add(a: int, b: int) -> int:
    return a + b


@task.with_options(retry_max_attempts=2, retry_delay=0.01)
async def flaky(key: str) -> int:
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] == 1:
        raise ValueError("the first attempt fails")
    return 2


@task.with_options(retry_max_attempts=0)
async def boom() -> None:
    raise RuntimeError("always")


@workflow
async def counted(ctx: ExecutionContext[str]) -> int:
    a = await add(1, 2)
    b = await flaky(ctx.execution_id)
    try:
        await boom()
    except RuntimeError:
        pass
    if ctx.input == "pause":
        await pause("approve")
        return await add(a, b)
    return a + b


@workflow
async def doomed(ctx: ExecutionContext[None]) -> None:
    raise ValueError("the workflow fails")
"""


def scrape(url: str) -> Scrape:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    return parse(response.text)


@pytest.fixture(
    params=[
        "sqlite",
        "sqlite-subprocess",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def setup(request: pytest.FixtureRequest) -> tuple[str | None, str]:
    """(database URL, ``None`` for SQLite; the worker's isolation)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    return url, "subprocess" if request.param.endswith("subprocess") else "inprocess"


def test_counters_move_by_exactly_the_runs_made(
    tmp_path: Path, setup: tuple[str | None, str]
) -> None:
    database_url, isolation = setup
    cluster: FluxCluster = make_cluster(tmp_path, database_url)
    worker_port = free_port()
    worker_metrics = f"http://127.0.0.1:{worker_port}/metrics"
    try:
        cluster.start_server()
        cluster.start_worker(
            "w1",
            *("--metrics-port", str(worker_port), "--metrics-host", "127.0.0.1"),
            *("--isolation", isolation),
        )
        source = tmp_path / "workflows.py"
        source.write_text(WORKFLOWS)
        server_metrics = f"{cluster.url}/metrics"
        with FluxClient(cluster.url, timeout=60) as client:
            client.register_workflows(source)
            server_before, worker_before = scrape(server_metrics), scrape(worker_metrics)
            for _ in range(3):
                assert client.run("counted", "go", mode="sync").state == ExecutionState.COMPLETED
            paused = client.run("counted", "pause", mode="sync")
            assert paused.state == ExecutionState.PAUSED
            resumed = client.resume("counted", paused.execution_id, "yes", mode="sync")
            assert resumed.state == ExecutionState.COMPLETED
            assert client.run("doomed", None, mode="sync").state == ExecutionState.FAILED
        server_after = scrape(server_metrics)

        def server_moved(name: str, **labels: str) -> float:
            return delta(server_after, server_before, name, **labels)

        assert server_moved("flux_executions_started_total", workflow="counted") == 4
        assert server_moved("flux_executions_started_total", workflow="doomed") == 1
        finished = "flux_executions_finished_total"
        assert server_moved(finished, workflow="counted", state="completed") == 4
        assert server_moved(finished, workflow="doomed", state="failed") == 1
        assert server_moved(finished, workflow="counted", state="failed") == 0
        durations = "flux_execution_duration_seconds_count"
        assert server_moved(durations, workflow="counted", state="completed") == 4
        assert server_moved("flux_dispatch_latency_seconds_count") == 6  # 5 runs, 1 resume
        wait_until(
            lambda: scrape(server_metrics).value("flux_executions", state="completed") == 4,
            what="the executions gauge (read from the database) to show 4 completed",
        )
        assert scrape(server_metrics).value("flux_workers_connected") == 1

        # Per run: add and flaky complete (flaky after one retry), boom fails. The paused
        # run's resume replays add, flaky, boom and the answered pause, then runs add.
        expected = {"completed": 9, "failed": 4, "retried": 4, "replayed": 4, "cancelled": 0}

        def worker_counts() -> dict[str, float]:
            now = scrape(worker_metrics)
            return {k: delta(now, worker_before, "flux_tasks_total", outcome=k) for k in expected}

        wait_until(lambda: worker_counts() == expected, what=f"the worker's task counts {expected}")
        worker_after = scrape(worker_metrics)

        def task_durations(task: str, outcome: str) -> float:
            name = "flux_task_duration_seconds_count"
            labels = {"workflow": "counted", "task": task, "outcome": outcome}
            return delta(worker_after, worker_before, name, **labels)

        assert task_durations("add", "completed") == 5
        assert task_durations("flaky", "completed") == 4
        assert task_durations("boom", "failed") == 4
        assert delta(worker_after, worker_before, "flux_checkpoint_duration_seconds_count") > 0
    finally:
        cluster.stop()


def test_a_metrics_port_taken_is_one_line_and_an_exit(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [
            sys.executable, "-m", "flux_worker", "w1",
            "--server-url", "http://127.0.0.1:9", "--token", "t",
            "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
        ]  # fmt: skip
        done = subprocess.run(
            argv, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60
        )
    assert done.returncode != 0
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
