"""What metrics cost: the server's and the worker's CPU per execution with Prometheus metrics
on and off, side by side, in interleaved batches.

    python -m bench.metrics_pairs [PAIRS] [RUNS]
    FLUX_BENCH_BEFORE=/path/to/clone/packages python -m bench.metrics_pairs   # a third variant
    python -m bench.metrics_pairs attribute [RUNS]    # the counting code's own time

One cluster per variant runs for the whole session, each a server (SQLite, or PostgreSQL
with ``FLUX_BENCH_DB=postgres``, a database each) and one worker (capacity 64) with a home of
its own, all warmed up with 50 executions. Then, PAIRS times, each cluster in turn runs a
batch of RUNS executions of each workload through 16 concurrent sync runs from this process,
the order reversed every other pair, and the server's and the worker's CPU (psutil) over each
batch is read. Batches of a pair run seconds apart, so the machine's drift, which on a shared
VM is larger than the effect measured, moves both alike. Workloads: ``bench_one`` (one task)
and ``bench_tasks`` with 10 tasks.

- **off**: ``server.metrics = false`` (no ``/metrics``, nothing counted), no worker port.
- **on**: the server counts, the worker serves ``--metrics-port``, and each batch ends with
  one scrape of both ``/metrics`` (a few seconds of load per scrape: more often than
  Prometheus's default 15 s). The scrapes' handling is in the server's and worker's CPU; the
  scraper's own is not counted. After the batches, 50 more scrapes of each measure what one
  scrape costs the server and the worker.
- **before** (only with ``FLUX_BENCH_BEFORE``): the server and worker processes run the
  packages of another checkout (a clone of the commit before metrics), to show what the code
  paths cost even with metrics off.

Reported: the medians of CPU per execution, and the median over pairs of each pair's on/off
ratio (of server+worker CPU).

``attribute`` measures the counting code itself: a server and a worker in this process
(SQLite, metrics on), RUNS executions of each workload, and the time spent inside the
server's ``ServerMetrics.count`` and the worker's ``WorkerMetrics.acknowledged`` and
``claimed`` (``time.thread_time``), per execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from flux.client import AsyncFluxClient

from bench.server import ROOT, Cluster, _CpuMeter, _drop_pg, _free_port, cluster_database

WORKLOADS = (("bench_one", 1), ("bench_tasks", 10))
CONCURRENCY = 16
WARMUP = 50
SCRAPES = 50
SETTLE = 0.5
"""Seconds every batch idles after its runs, before its CPU is read."""


@dataclass
class _Variant:
    name: str
    cluster: Cluster
    scraped: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _clusters(names: list[str], database: str, home: Path) -> Iterator[list[_Variant]]:
    """A running cluster per variant (and its database on PostgreSQL), stopped at the end."""
    started: list[_Variant] = []
    databases: list[str] = []
    try:
        for name in names:
            folder = home / name
            folder.mkdir()
            variant = _Variant(name, Cluster(folder, cluster_database(folder, database, databases)))
            _configure(variant)
            started.append(variant)
            variant.cluster.start(1)
        yield started
    finally:
        for variant in started:
            variant.cluster.stop()
        for db_name in databases:
            _drop_pg(db_name)


def _configure(variant: _Variant) -> None:
    cluster = variant.cluster
    if variant.name == "on":
        port = _free_port()
        cluster.worker_args = ["--metrics-port", str(port), "--metrics-host", "127.0.0.1"]
        variant.scraped = [f"{cluster.url}/metrics", f"http://127.0.0.1:{port}/metrics"]
    elif variant.name == "off":
        cluster.env["FLUX_SERVER__METRICS"] = "false"
    else:  # before: another checkout's packages, which have no metrics
        packages = Path(os.environ["FLUX_BENCH_BEFORE"])
        cluster.env["PYTHONPATH"] = os.pathsep.join(
            str(packages / name) for name in ("flux-sdk", "flux-server", "flux-worker")
        )


async def _batch(
    variant: _Variant, client: AsyncFluxClient, name: str, tasks: int, runs: int
) -> tuple[float, float]:
    """Server and worker CPU microseconds per execution of ``runs`` sync runs (and, for the
    on variant, one scrape of each /metrics)."""
    meter = _CpuMeter(variant.cluster)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with gate:
            status = await client.run(name, tasks, mode="sync")
            if status.state != "COMPLETED":
                raise RuntimeError(f"{name} ended {status.state}")

    meter.restart()
    await asyncio.gather(*(one() for _ in range(runs)))
    async with httpx.AsyncClient(timeout=10) as http:
        for url in variant.scraped:
            (await http.get(url)).raise_for_status()
    await asyncio.sleep(SETTLE)
    server, worker = meter.spent()
    return server / runs * 1e6, worker / runs * 1e6


async def _scrape_cost(variant: _Variant) -> tuple[float, float]:
    """Server and worker CPU microseconds per scrape of each."""
    meter = _CpuMeter(variant.cluster)
    async with httpx.AsyncClient(timeout=10) as http:
        meter.restart()
        for _ in range(SCRAPES):
            for url in variant.scraped:
                (await http.get(url)).raise_for_status()
        server, worker = meter.spent()
    return server / SCRAPES * 1e6, worker / SCRAPES * 1e6


async def _session(
    variants: list[_Variant], pairs: int, runs: int
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for variant in variants:
            client = AsyncFluxClient(variant.cluster.url, timeout=120)
            clients[variant.name] = await stack.enter_async_context(client)
            await client.register_workflows(ROOT / "bench" / "workflows.py")
            await asyncio.gather(*(client.run("bench_one", 1, mode="sync") for _ in range(WARMUP)))
        for pair in range(pairs):
            order = variants if pair % 2 == 0 else variants[::-1]
            shown = []
            for name, tasks in WORKLOADS:
                for variant in order:
                    cpu = await _batch(variant, clients[variant.name], name, tasks, runs)
                    samples.setdefault((variant.name, name), []).append(cpu)
                    shown.append(f"{name} {variant.name} {sum(cpu):,.0f} us")
            print(f"pair {pair + 1}: {', '.join(shown)}", flush=True)
        on = next(v for v in variants if v.name == "on")
        samples[("on", "a scrape")] = [await _scrape_cost(on)]
    return samples


async def _attribute(runs: int) -> None:
    from flux_server import ServerOptions, create_app
    from flux_server.metrics import ServerMetrics
    from flux_server.testing import serve_in_process
    from flux_worker import Worker
    from flux_worker.metrics import WorkerMetrics

    spent = {"server": 0.0, "worker": 0.0}

    def timed(cls: Any, method: str, side: str) -> None:
        original = getattr(cls, method)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent[side] += time.thread_time() - began

        setattr(cls, method, wrapper)

    timed(ServerMetrics, "count", "server")
    timed(WorkerMetrics, "acknowledged", "worker")
    timed(WorkerMetrics, "claimed", "worker")
    with tempfile.TemporaryDirectory() as tmp:
        options = ServerOptions(database_url=f"sqlite:///{tmp}/flux.db", home=Path(tmp))
        app = create_app(options)
        async with serve_in_process(app) as transport:
            async with AsyncFluxClient("http://flux.test", transport=transport) as client:
                await client.register_workflows(ROOT / "bench" / "workflows.py")
                token = (Path(tmp) / "bootstrap-token").read_text().strip()
                worker = Worker(
                    "bench", "http://flux.test", token, capacity=64, home=tmp, client=client,
                    metrics_port=0, metrics_host="127.0.0.1",
                )  # fmt: skip
                serving = asyncio.create_task(worker.run())
                gate = asyncio.Semaphore(CONCURRENCY)

                async def one(name: str, tasks: int) -> None:
                    async with gate:
                        status = await client.run(name, tasks, mode="sync")
                        if status.state != "COMPLETED":
                            raise RuntimeError(f"{name} ended {status.state}")

                await asyncio.gather(*(one("bench_one", 1) for _ in range(WARMUP)))
                print("| workload | server counting | worker counting | per execution |")
                print("|---|---:|---:|---:|")
                for name, tasks in WORKLOADS:
                    for side in spent:
                        spent[side] = 0.0
                    await asyncio.gather(*(one(name, tasks) for _ in range(runs)))
                    server, worker_us = (spent[k] / runs * 1e6 for k in ("server", "worker"))
                    print(
                        f"| {name} ({tasks} task{'s' if tasks > 1 else ''}) | {server:.1f} us "
                        f"| {worker_us:.1f} us | {server + worker_us:.1f} us |"
                    )
                worker.stop()
                await serving


def main(argv: list[str]) -> None:
    if argv[:1] == ["attribute"]:
        asyncio.run(_attribute(int(argv[1]) if len(argv) > 1 else 2000))
        return
    pairs = int(argv[0]) if argv else 10
    runs = int(argv[1]) if len(argv) > 1 else 200
    names = ["off", "on", *(["before"] if os.environ.get("FLUX_BENCH_BEFORE") else [])]
    database = os.environ.get("FLUX_BENCH_DB", "sqlite")
    with tempfile.TemporaryDirectory() as tmp, _clusters(names, database, Path(tmp)) as variants:
        samples = asyncio.run(_session(variants, pairs, runs))
    print(
        f"\n{database}, {pairs} pairs of batches of {runs} executions per workload; medians "
        "of CPU per execution (server / worker / both)"
    )
    print(f"| workload | {' | '.join(names)} | on vs off (medians; of pair ratios) |")
    print(f"|---|{'---:|' * len(names)}---:|")
    for name, tasks in WORKLOADS:
        medians = {v: _medians(samples[(v, name)]) for v in names}
        cells = " | ".join(f"{s:,.0f} / {w:,.0f} / {b:,.0f} us" for s, w, b in medians.values())
        change = (medians["on"][2] - medians["off"][2]) / medians["off"][2] * 100
        ratios = [
            sum(on) / sum(off)
            for on, off in zip(samples[("on", name)], samples[("off", name)], strict=True)
        ]
        paired = (statistics.median(ratios) - 1) * 100
        print(
            f"| {name} ({tasks} task{'s' if tasks > 1 else ''}) | {cells} "
            f"| {change:+.1f} %; {paired:+.1f} % |"
        )
    server, worker, _ = _medians(samples[("on", "a scrape")])
    print(f"\nOne scrape of each /metrics: server {server:,.0f} us, worker {worker:,.0f} us CPU")


def _medians(values: list[tuple[float, float]]) -> tuple[float, float, float]:
    server = statistics.median(s for s, _ in values)
    worker = statistics.median(w for _, w in values)
    both = statistics.median(s + w for s, w in values)
    return server, worker, both


if __name__ == "__main__":
    started = time.monotonic()
    main(sys.argv[1:])
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
