"""Dispatch: resource routing, capacity, load spreading, and replicas on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from flux.domain import ExecutionState
from flux.protocol import GpuInfo, PackageInfo, WorkerResources
from flux_server.dispatch import fits
from server_support import GPU_FLOW, HELLO, gpu_box


def test_fits_compares_requests_with_resources() -> None:
    box = WorkerResources(
        cpu_count=4, memory_total=8 * 2**30, disk_total=100 * 2**30,
        gpus=[GpuInfo(name="A100")],
    )  # fmt: skip
    assert fits(None, box)
    assert fits({"cpu": 4, "memory": 8 * 2**30, "gpu": 1}, box)
    assert not fits({"cpu": 5}, box)
    assert not fits({"memory": 9 * 2**30}, box)
    assert not fits({"gpu": 2}, box)
    assert not fits({"disk": 200 * 2**30}, box)


def test_fits_counts_gpus_with_enough_memory() -> None:
    big = GpuInfo(name="H200", memory_total=141 * 2**30)
    small = GpuInfo(name="T4", memory_total=16 * 2**30)
    box = WorkerResources(cpu_count=8, gpus=[small, big])
    assert fits({"gpu_memory": "80Gi"}, box)  # one GPU by default
    assert fits({"gpu": 2, "gpu_memory": "16Gi"}, box)
    assert not fits({"gpu": 2, "gpu_memory": "80Gi"}, box)
    assert not fits({"gpu_memory": "200Gi"}, box)
    assert not fits({"gpu_memory": "1Gi"}, WorkerResources(cpu_count=8))


def test_fits_checks_requested_packages_against_installed_ones() -> None:
    box = WorkerResources(cpu_count=2)
    installed = {"numpy": "2.1.0", "scikit-learn": "1.5.2", "odd": "not-a-version"}
    assert fits({"packages": ["numpy"]}, box, installed)
    assert fits({"packages": ["numpy>=2", "Scikit_Learn~=1.5"]}, box, installed)
    assert not fits({"packages": ["numpy<2"]}, box, installed)
    assert not fits({"packages": ["torch"]}, box, installed)
    assert not fits({"packages": ["odd>=1"]}, box, installed)
    assert not fits({"packages": ["numpy"]}, box)  # a worker that reported nothing


async def test_package_requests_route_to_workers_that_have_them(server) -> None:
    await server.register(
        b"from flux import workflow\n\n"
        b'@workflow.with_options(requests={"packages": ["numpy>=2"]})\n'
        b"async def numeric(ctx):\n    return 1\n"
    )
    await server.register(HELLO)
    bare = await server.worker("bare")
    numeric = await server.client.run("numeric")
    hello = await server.client.run("hello")
    assert (await bare.next_offer()).execution_id == hello.execution_id
    assert bare.frames.empty()
    science = await server.worker("science", packages=[PackageInfo(name="NumPy", version="2.1.0")])
    assert (await science.next_offer()).execution_id == numeric.execution_id


async def test_gpu_work_skips_cpu_workers_without_blocking_other_work(server) -> None:
    await server.register(GPU_FLOW)
    await server.register(HELLO)
    cpu = await server.worker("cpu-only")
    train = await server.client.run("train")  # first in the queue, fits nowhere yet
    hello = await server.client.run("hello")
    offer = await cpu.next_offer()
    assert offer.execution_id == hello.execution_id
    assert cpu.frames.empty()
    assert (await server.client.status("train", train.execution_id)).state == "SCHEDULED"

    gpu = await server.worker("gpu-box", resources=gpu_box())
    offer = await gpu.next_offer()
    assert offer.execution_id == train.execution_id
    claim = await gpu.claim(offer.execution_id)
    await gpu.finish(claim, "trained")
    assert cpu.frames.empty()


async def test_work_behind_a_page_of_unfitting_work_is_offered(server) -> None:
    """The dispatcher reads the queue a page (500) at a time: an execution behind more than a
    page of work that fits nowhere is still found."""
    await server.register(GPU_FLOW)
    await server.register(HELLO)
    train = await server.runtime.workflows.latest("train")
    await asyncio.gather(*(server.runtime.executions.create(train, i) for i in range(505)))
    hello = await server.client.run("hello")
    cpu = await server.worker("cpu-only")
    assert (await cpu.next_offer()).execution_id == hello.execution_id
    assert cpu.frames.empty()


async def test_gpu_requests_hold_the_workers_gpus_until_they_finish(server) -> None:
    """A one-GPU worker with room for four runs gets one ``gpu=1`` execution at a time;
    other work still fills its free slots."""
    await server.register(GPU_FLOW)
    await server.register(HELLO)
    gpu = await server.worker("gpu-box", capacity=4, resources=gpu_box())
    first = await server.client.run("train")
    second = await server.client.run("train")
    hello = await server.client.run("hello")
    offered = [await gpu.next_offer(), await gpu.next_offer()]
    assert {o.execution_id for o in offered} == {first.execution_id, hello.execution_id}
    assert gpu.frames.empty()  # the second GPU run waits for the GPU, not for a slot
    claim = await gpu.claim(first.execution_id)
    await gpu.finish(claim, "trained")
    assert (await gpu.next_offer()).execution_id == second.execution_id


async def test_capacity_bounds_offers(server) -> None:
    await server.register()
    worker = await server.worker(capacity=1)
    runs = [await server.client.run("hello", i) for i in range(3)]
    done = []
    for _ in runs:
        claim = await worker.take()
        assert worker.frames.empty()  # never a second offer while it holds one
        await worker.finish(claim, claim.execution_id)
        done.append(claim.execution_id)
    assert done == [r.execution_id for r in runs]  # oldest first


async def test_least_loaded_worker_gets_the_next_offer(server) -> None:
    await server.register()
    w1 = await server.worker("w1", capacity=2)
    w2 = await server.worker("w2", capacity=2)
    await server.client.run("hello", 1)
    await server.client.run("hello", 2)
    first, second = await w1.next_offer(), await w2.next_offer()
    assert first.execution_id != second.execution_id


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_replicas_share_work_over_postgres(start_server) -> None:
    """A run on replica A reaches a worker connected to replica B (LISTEN/NOTIFY), and A's
    sync waiter hears B's checkpoint."""
    a = await start_server()
    b = await start_server()
    await a.register()
    worker = await b.worker()

    async def work() -> None:
        claim = await worker.take()
        await worker.finish(claim, "from b")

    job = asyncio.create_task(work())
    status = await a.client.run("hello", "x", mode="sync")
    await job
    assert (status.state, status.output) == (ExecutionState.COMPLETED, "from b")


async def test_an_offer_to_a_worker_that_left_during_the_round_is_withdrawn(
    server, monkeypatch
) -> None:
    """A worker can disconnect while a dispatch round offers it work, after its disconnect
    withdrew the offers it had then (on PostgreSQL that withdrawal may commit first). The
    offer the round could not deliver is withdrawn too: another worker gets the execution
    at once, not after the claim timeout (30 s here)."""
    await server.register()
    hub = server.runtime.hub
    await server.worker("w1")
    real_send = hub.send

    def leaving(name: str, data: bytes) -> bool:
        if name == "w1" and b"execution.scheduled" in data:
            hub.connections.pop("w1", None)  # gone, its own withdrawal already done
            return False
        return real_send(name, data)

    monkeypatch.setattr(hub, "send", leaving)
    run = await server.client.run("hello", "x")
    w2 = await server.worker("w2")
    offer = await w2.next_offer(timeout=5)
    assert offer.execution_id == run.execution_id
