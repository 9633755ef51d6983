"""What metrics cost: the server's and the worker's CPU per execution with Prometheus metrics
on and off, in interleaved runs.

    python -m bench.metrics_pairs [PAIRS] [RUNS]
    FLUX_BENCH_BEFORE=/path/to/clone/packages python -m bench.metrics_pairs   # a third variant
    python -m bench.metrics_pairs attribute [RUNS]    # the counting code's own time

Each run starts a fresh server (SQLite, or PostgreSQL with ``FLUX_BENCH_DB=postgres``), one
worker (capacity 64) and a home of its own, warms up with 50 executions, then runs RUNS
executions of each workload through 16 concurrent sync runs from this process, and reads the
server's and the worker's CPU (psutil) over each workload. Workloads: ``bench_one`` (one
task) and ``bench_tasks`` with 10 tasks.

- **off**: ``server.metrics = false`` (no ``/metrics``, nothing counted), no worker port.
- **on**: the server counts, the worker serves ``--metrics-port``, and a scraper in this
  process reads both ``/metrics`` every ``FLUX_BENCH_SCRAPE`` seconds during the run (default
  15, Prometheus's default interval) and once at its end. The scrapes' handling is in the
  server's and worker's CPU; the scraper's own is not counted. After the workloads, 50 more
  scrapes of each measure what one scrape costs the server and the worker.
- **before** (only with ``FLUX_BENCH_BEFORE``): the server and worker processes run the
  packages of another checkout (a clone of the commit before metrics), to show what the code
  paths cost even with metrics off.

``attribute`` measures the counting code itself, which the pairs cannot resolve on a busy
machine: a server and a worker in this process (SQLite, metrics on), RUNS executions of each
workload, and the time spent inside the server's ``ServerMetrics.count`` and the worker's
``WorkerMetrics.acknowledged`` and ``claimed`` (``time.thread_time``), per execution.

Every pair runs every variant, the order reversed every other pair. Reported: the medians of
CPU per execution, and the median over pairs of each pair's on/off ratio (of server+worker
CPU), which a machine whose speed drifts during the session moves less.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from flux.client import AsyncFluxClient

from bench.server import ROOT, Cluster, _CpuMeter, _drop_pg, _free_port, _pg_database

WORKLOADS = (("bench_one", 1), ("bench_tasks", 10))
CONCURRENCY = 16
WARMUP = 50
SCRAPE_INTERVAL = float(os.environ.get("FLUX_BENCH_SCRAPE", "15"))
SCRAPES = 50
SETTLE = 1.0
"""Seconds every variant idles after a workload, before its CPU is read."""


async def _scrape(urls: list[str], stop: asyncio.Event, count: list[int]) -> None:
    """Scrape ``urls`` every :data:`SCRAPE_INTERVAL` seconds, and once more at ``stop``."""
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            try:
                await asyncio.wait_for(stop.wait(), SCRAPE_INTERVAL)
            except TimeoutError:
                pass
            for url in urls:
                response = await http.get(url)
                response.raise_for_status()
                count[0] += 1
            if stop.is_set():
                return


async def _scrape_cost(cluster: Cluster, urls: list[str]) -> tuple[float, float]:
    """Server and worker CPU microseconds per scrape of each."""
    meter = _CpuMeter(cluster)
    async with httpx.AsyncClient(timeout=10) as http:
        meter.restart()
        for _ in range(SCRAPES):
            for url in urls:
                (await http.get(url)).raise_for_status()
        server, worker = meter.spent()
    return server / SCRAPES * 1e6, worker / SCRAPES * 1e6


async def _workload(
    cluster: Cluster, name: str, tasks: int, runs: int, scraped: list[str]
) -> tuple[float, float]:
    """Server and worker CPU microseconds per execution of ``runs`` sync runs."""
    meter = _CpuMeter(cluster)
    gate = asyncio.Semaphore(CONCURRENCY)
    stop = asyncio.Event()
    scrapes = [0]
    async with AsyncFluxClient(cluster.url, timeout=120) as client:

        async def one() -> None:
            async with gate:
                status = await client.run(name, tasks, mode="sync")
                if status.state != "COMPLETED":
                    raise RuntimeError(f"{name} ended {status.state}")

        meter.restart()
        scraper = asyncio.create_task(_scrape(scraped, stop, scrapes))
        await asyncio.gather(*(one() for _ in range(runs)))
        stop.set()
        await scraper
        await asyncio.sleep(SETTLE)
        server, worker = meter.spent()
    if scraped and scrapes[0] < len(scraped):
        raise RuntimeError("the metrics were never scraped")
    return server / runs * 1e6, worker / runs * 1e6


async def _run(cluster: Cluster, runs: int, scraped: list[str]) -> dict[str, tuple[float, float]]:
    async with AsyncFluxClient(cluster.url, timeout=120) as client:
        await client.register_workflows(ROOT / "bench" / "workflows.py")
        await asyncio.gather(*(client.run("bench_one", 1, mode="sync") for _ in range(WARMUP)))
    figures = {
        name: await _workload(cluster, name, tasks, runs, scraped) for name, tasks in WORKLOADS
    }
    if scraped:
        figures["a scrape"] = await _scrape_cost(cluster, scraped)
    return figures


def _one(variant: str, database_url: str, runs: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp), database_url or f"sqlite:///{tmp}/flux.db")
        scraped: list[str] = []
        if variant == "on":
            port = _free_port()
            cluster.worker_args = ["--metrics-port", str(port), "--metrics-host", "127.0.0.1"]
            scraped = [f"{cluster.url}/metrics", f"http://127.0.0.1:{port}/metrics"]
        elif variant == "off":
            cluster.env["FLUX_SERVER__METRICS"] = "false"
        else:  # before: another checkout's packages, which have no metrics
            packages = Path(os.environ["FLUX_BENCH_BEFORE"])
            cluster.env["PYTHONPATH"] = os.pathsep.join(
                str(packages / name) for name in ("flux-sdk", "flux-server", "flux-worker")
            )
        try:
            cluster.start(1)
            return asyncio.run(_run(cluster, runs, scraped))
        finally:
            cluster.stop()


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
    pairs = int(argv[0]) if argv else 5
    runs = int(argv[1]) if len(argv) > 1 else 500
    variants = ["off", "on", *(["before"] if os.environ.get("FLUX_BENCH_BEFORE") else [])]
    database = os.environ.get("FLUX_BENCH_DB", "sqlite")
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for pair in range(pairs):
        order = variants if pair % 2 == 0 else variants[::-1]
        for variant in order:
            url, created = "", None
            if database == "postgres":
                created = _pg_database()
                if created is None:
                    raise RuntimeError("PostgreSQL does not answer at FLUX_TEST_PG")
                url = created[0]
            try:
                figures = _one(variant, url, runs)
            finally:
                if created is not None:
                    _drop_pg(created[1])
            for name, cpu in figures.items():
                samples.setdefault((variant, name), []).append(cpu)
            shown = ", ".join(f"{n} {s + w:,.0f} us" for n, (s, w) in figures.items())
            print(f"pair {pair + 1} metrics {variant}: {shown}", flush=True)
    print(
        f"\n{database}, {pairs} pairs of {runs} executions per workload; medians of CPU per "
        "execution (server / worker / both)"
    )
    print(f"| workload | {' | '.join(variants)} | on vs off (medians; of pair ratios) |")
    print(f"|---|{'---:|' * len(variants)}---:|")
    for name, tasks in WORKLOADS:
        medians = {v: _medians(samples[(v, name)]) for v in variants}
        cells = " | ".join(f"{s:,.0f} / {w:,.0f} / {b:,.0f} us" for s, w, b in medians.values())
        change = (medians["on"][2] - medians["off"][2]) / medians["off"][2] * 100
        ratios = [
            (on[0] + on[1]) / (off[0] + off[1])
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
