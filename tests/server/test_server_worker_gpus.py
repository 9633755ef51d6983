"""GPU assignment by the worker: which GPUs an execution gets, and what a child process sees.

Real ``Worker`` objects against an in-process server; the GPUs are made up (NVML reports
none on this machine), which is all the assignment needs: the server routes by the reported
GPUs, the worker picks indices, and a child process gets ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import asyncio

import pytest
from flux.protocol import GpuInfo, ResourceRequest
from flux_worker import resources
from flux_worker.resources import GpuSlots, gpu_env
from server_support import running_worker

from tests.support.waiting import wait_until_async

GIB = 2**30
SMALL, LARGE = (
    GpuInfo(name="small", memory_total=16 * GIB),
    GpuInfo(name="large", memory_total=80 * GIB),
)


def test_gpu_slots_give_each_execution_its_own_gpus() -> None:
    slots = GpuSlots([SMALL, LARGE, SMALL])
    assert slots.take("cpu-only", None) == []
    assert slots.take("cpu-only", ResourceRequest(cpu=2)) == []
    assert slots.take("a", ResourceRequest(gpu=1)) == [0]
    assert slots.take("big", ResourceRequest(gpu_memory="40Gi")) == [1]
    assert slots.take("b", ResourceRequest(gpu=2)) is None  # one left
    assert slots.take("c", ResourceRequest(gpu=1, gpu_memory="40Gi")) is None
    assert slots.take("b", ResourceRequest(gpu=1)) == [2]
    assert slots.held() == {0: "a", 1: "big", 2: "b"}
    slots.give_back("a")
    slots.give_back("big")
    assert slots.take("d", ResourceRequest(gpu=2)) == [0, 1]
    assert gpu_env([0, 1]) == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "0,1"}


FLOWS = b"""
import asyncio
import os

from flux import ExecutionContext, task, workflow


@task
async def visible(hold: float) -> str:
    await asyncio.sleep(hold)
    return os.environ.get("CUDA_VISIBLE_DEVICES", "all")


@workflow.with_options(requests={"gpu": 1})
async def one_gpu(ctx: ExecutionContext[float]):
    return await visible(ctx.input)


@workflow.with_options(requests={"gpu": 2})
async def two_gpus(ctx: ExecutionContext[float]):
    return await visible(ctx.input)


@workflow
async def no_gpu(ctx: ExecutionContext[float]):
    return await visible(ctx.input)
"""


async def test_child_processes_see_only_the_gpus_they_were_given(
    server, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(resources, "detect_gpus", lambda: [SMALL, SMALL])
    await server.register(FLOWS)
    async with running_worker(server.client, capacity=4, isolation="subprocess") as worker:
        # Two one-GPU runs at once hold different GPUs; a CPU run sees them all.
        runs = await asyncio.gather(
            server.client.run("one_gpu", 1.0, mode="sync"),
            server.client.run("one_gpu", 1.0, mode="sync"),
            server.client.run("no_gpu", 0.0, mode="sync"),
        )
        assert sorted(r.output for r in runs[:2]) == ["0", "1"]
        assert runs[2].output == "all"
        both = await server.client.run("two_gpus", 0.0, mode="sync")
        assert both.output == "0,1"

        async def all_given_back() -> bool:
            return worker.gpu_slots.held() == {}

        await wait_until_async(all_given_back)  # once the last run has unwound


async def test_in_process_runs_hold_no_gpu_slots(server, tmp_path, monkeypatch) -> None:
    """In-process runs share the worker's process: nothing to pin, nothing held."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(resources, "detect_gpus", lambda: [SMALL])
    await server.register(FLOWS)
    async with running_worker(server.client, capacity=4) as worker:
        run = await server.client.run("one_gpu", 0.0, mode="sync")
        assert (run.state, worker.gpu_slots.held()) == ("COMPLETED", {})


@pytest.fixture(autouse=True)
def _no_real_nvml(monkeypatch) -> None:
    monkeypatch.setattr(resources, "detect_gpus", lambda: [])
