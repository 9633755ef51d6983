"""GPU detection and GPU routing with real processes, on a machine with an NVIDIA GPU.

Skipped where NVML finds no GPU (CI has none); run on a GPU machine with
``pytest tests/e2e/test_gpu.py``. The routing rules themselves are covered without a GPU in
``tests/server/test_server_dispatch.py``, with reported resources made up.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from flux.client import FluxClient
from flux_worker.resources import detect_gpus

from tests.support.cluster import FluxCluster, make_cluster
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not detect_gpus(), reason="no NVIDIA GPU visible through NVML"),
]

GIB = 2**30

WORKFLOWS = """
from flux import ExecutionContext, task, workflow


@task
async def device_report() -> dict:
    import torch  # the GPU machine's own PyTorch

    x = torch.ones((1024, 1024), device="cuda")
    return {
        "device": torch.cuda.get_device_name(0),
        "sum": float((x @ x).sum().item()),
    }


@workflow.with_options(requests={"gpu": 1})
async def on_gpu(ctx: ExecutionContext):
    return await device_report()


@workflow.with_options(requests={"gpu": 1, "gpu_memory": "%(fits)s"})
async def big_enough(ctx: ExecutionContext):
    return "fits"


@workflow.with_options(requests={"gpu": %(too_many)d})
async def too_many_gpus(ctx: ExecutionContext):
    return "never"


@workflow.with_options(requests={"gpu_memory": "%(too_large)s"})
async def too_large_gpu(ctx: ExecutionContext):
    return "never"


@workflow
async def plain(ctx: ExecutionContext[str]):
    return f"plain {ctx.input}"
"""


@pytest.fixture
def gpu_cluster(tmp_path: Path):
    c = make_cluster(tmp_path)
    try:
        c.start_server()
        c.start_worker("gpu-worker")
        yield c
    finally:
        c.stop()


def test_worker_reports_the_gpus_nvml_sees(gpu_cluster: FluxCluster) -> None:
    expected = detect_gpus()
    with FluxClient(gpu_cluster.url) as client:
        (worker,) = [w for w in client.list_workers() if w.name == "gpu-worker"]
    gpus = worker.resources.gpus
    assert [g.name for g in gpus] == [g.name for g in expected]
    assert [g.memory_total for g in gpus] == [g.memory_total for g in expected]
    assert all(g.memory_total > GIB and 0 < g.memory_free <= g.memory_total for g in gpus)


def test_gpu_requests_route_to_the_gpu_worker_and_unfit_work_waits(
    gpu_cluster: FluxCluster, tmp_path: Path
) -> None:
    gpus = detect_gpus()
    largest = max(g.memory_total for g in gpus)
    source = tmp_path / "gpu_workflows.py"
    source.write_text(
        WORKFLOWS
        % {
            "fits": f"{largest // GIB}Gi",
            "too_many": len(gpus) + 1,
            "too_large": f"{largest // GIB + 1}Gi",
        }
    )
    with FluxClient(gpu_cluster.url) as client:
        client.register_workflows(source)
        # Queued first, fitting nowhere: they must not hold up the work behind them.
        many = client.run("too_many_gpus", mode="async")
        large = client.run("too_large_gpu", mode="async")

        assert client.run("big_enough", mode="sync").output == "fits"
        done = client.run("plain", "after", mode="sync")
        assert (done.state, done.output, done.worker) == ("COMPLETED", "plain after", "gpu-worker")

        if importlib.util.find_spec("torch") is not None:
            ran = client.run("on_gpu", mode="sync")
            assert ran.state == "COMPLETED", ran
            assert ran.worker == "gpu-worker"
            assert ran.output == {"device": gpus[0].name, "sum": float(1024**3)}

        for waiting, name in ((many, "too_many_gpus"), (large, "too_large_gpu")):
            status = client.status(name, waiting.execution_id)
            assert status.state == "SCHEDULED" and status.worker is None

        # The first `import torch` blocks the worker's event loop for seconds: the keepalive
        # thread must have kept the worker alive, so nothing ran twice.
        assert "declared dead" not in (gpu_cluster.home / "server.log").read_text()

        # A cancelled request that fits nowhere ends cleanly instead of waiting forever.
        client.cancel("too_many_gpus", many.execution_id, mode="sync")
        wait_until(
            lambda: client.status("too_many_gpus", many.execution_id).state == "CANCELLED",
            what="the unfit execution to be cancelled",
        )
