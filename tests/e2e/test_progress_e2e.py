"""Progress with real server and worker processes (in-process and subprocess isolation): what a
task publishes reaches the execution's streams before the execution moves on, the `flux` CLI
prints it live, and none of it is in the event log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from flux.client import FluxClient
from flux.protocol import TaskProgressFrame

from tests.support.cluster import FluxCluster, make_cluster, running_cluster

pytestmark = pytest.mark.e2e

WORKFLOWS = """
import asyncio
from pathlib import Path

from flux import ExecutionContext, task, workflow
from flux.tasks import pause, progress


@task
async def steps(n: int, gate: str) -> int:
    # Waits until the test has its stream open: progress nobody watches is dropped.
    while not Path(gate).exists():
        await asyncio.sleep(0.02)
    for i in range(n):
        await progress({"step": i + 1, "of": n})
    return n


@workflow
async def stepped(ctx: ExecutionContext[dict]):
    done = await steps(ctx.input["n"], ctx.input["gate"])
    await pause("look")
    return done
"""


def follow(cluster: FluxCluster, gate: Path) -> list[object]:
    """Run ``stepped`` on a stream that asks for progress; open the gate once it runs."""
    frames: list[object] = []
    with FluxClient(cluster.url) as client:
        for frame in client.stream("stepped", {"n": 3, "gate": str(gate)}, progress=True):
            frames.append(frame)
            if getattr(frame, "state", None) == "RUNNING":
                gate.touch()
        execution_id = frames[-1].execution_id
        events = client.status("stepped", execution_id, detailed=True).events or []
    assert "'of': 3" not in str([e.model_dump() for e in events])  # nothing of it recorded
    return frames


@pytest.mark.parametrize("isolation", ["inprocess", "subprocess"])
def test_progress_reaches_the_stream_before_the_execution_moves_on(
    tmp_path: Path, isolation: str
) -> None:
    cluster = make_cluster(tmp_path)
    path = tmp_path / "workflows.py"
    path.write_text(WORKFLOWS)
    try:
        cluster.start_server()
        cluster.start_worker("w1", "--isolation", isolation)
        with FluxClient(cluster.url) as client:
            client.register_workflows(path)
        frames = follow(cluster, tmp_path / "gate")
    finally:
        cluster.stop()

    shown = [
        (f.task, f.value) if isinstance(f, TaskProgressFrame) else f.state.value for f in frames
    ]
    assert shown == [
        "RUNNING",
        ("steps", {"step": 1, "of": 3}),
        ("steps", {"step": 2, "of": 3}),
        ("steps", {"step": 3, "of": 3}),
        "PAUSED",
    ]


def test_the_cli_prints_progress_live(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with running_cluster(tmp_path, WORKFLOWS) as cluster:
        argv = [
            sys.executable, "-m", "flux_cli", "--server-url", cluster.url, "workflow", "run",
            "stepped", f'{{"n": 2, "gate": "{gate}"}}', "--mode", "stream",
        ]  # fmt: skip
        lines: list[str] = []
        with subprocess.Popen(
            argv, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as cli:
            assert cli.stdout is not None and cli.stderr is not None
            try:
                for line in cli.stdout:
                    lines.append(line.rstrip())
                    if "workflow.execution.running" in line:
                        gate.touch()
                cli.wait(60)
            finally:
                if cli.poll() is None:
                    cli.kill()
            stderr = cli.stderr.read()

    assert cli.returncode == 0, stderr
    progress = [line for line in lines if "task.progress" in line]
    assert len(progress) == 2
    assert progress[0].endswith('steps: {"step": 1, "of": 2}')
    assert lines.index(progress[1]) < next(
        i for i, line in enumerate(lines) if "workflow.execution.paused" in line
    )
