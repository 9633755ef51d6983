"""The scale curve: executions/s and CPU per execution with 1, 2 and 4 workers behind 1 and 2
server replicas on one PostgreSQL database, and executions/s as the executions table grows to
1,000,000 rows.

    python -m bench scale
    FLUX_BENCH_DB=postgres FLUX_BENCH_SCALE_RUNS=1000 FLUX_BENCH_SCALE_ROWS=100000 \
        python -m bench scale

Every process (replicas, workers, PostgreSQL, wrk) shares this machine's cores: on a small
machine more workers and replicas measure contention for the same cores, not capacity. The CPU
per execution (every server and worker process together) tells a costlier configuration from
a busier machine. The load is one-task workflows run in sync mode by wrk, 64 connections
spread over the replicas. The growth curve seeds rows by bulk insert (as ``bench.listing``
does), between measurements, with the cluster stopped. Writes the figures as a Markdown table
and, with matplotlib, a plot to ``docs/img/scale.png`` (``FLUX_BENCH_SCALE_PLOT`` to change
where; empty for none).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flux.client import AsyncFluxClient

from bench.listing import _migrate, _seed_postgres, _seed_sqlite
from bench.server import ROOT, Cluster, _drop_pg, _pg_database
from bench.wrk import executable, run_many

RUNS = int(os.environ.get("FLUX_BENCH_SCALE_RUNS", "2000"))
WORKERS = (1, 2, 4)
REPLICAS = (1, 2)
ROWS = int(os.environ.get("FLUX_BENCH_SCALE_ROWS", "1000000"))
SIZES = (0, ROWS // 10, ROWS * 3 // 10, ROWS)
CONNECTIONS = 64
PLOT = os.environ.get("FLUX_BENCH_SCALE_PLOT", str(ROOT / "docs" / "img" / "scale.png"))

Figure = tuple[str, float, str, str]
FINISHED = ["COMPLETED"] * 90 + ["FAILED"] * 8 + ["CANCELLED"] * 2
"""The seeded rows' states: finished, so that no worker is offered them."""


class Fleet:
    """``replicas`` server processes on one database (one FLUX_HOME, so one secrets key),
    workers spread over them in turn."""

    def __init__(self, home: Path, database_url: str, replicas: int) -> None:
        self.replicas = [Cluster(home, database_url) for _ in range(replicas)]

    @property
    def urls(self) -> list[str]:
        return [replica.url for replica in self.replicas]

    def start(self, workers: int) -> None:
        for replica in self.replicas:
            replica.start(0)
        for i in range(workers):
            self.replicas[i % len(self.replicas)].add_worker(f"scale-{i}")

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()

    def cpu(self) -> float:
        """CPU seconds of every server and worker process so far."""
        import psutil

        total = 0.0
        for replica in self.replicas:
            for proc in replica.procs:
                times = psutil.Process(proc.pid).cpu_times()
                total += times.user + times.system
        return total


async def _load(fleet: Fleet, runs: int) -> tuple[float, float]:
    """Executions/s and server+worker CPU µs per execution for ``runs`` one-task workflows."""
    async with AsyncFluxClient(fleet.urls[0], timeout=120) as client:
        await client.register_workflows(ROOT / "bench" / "workflows.py")
    for url in fleet.urls:  # warm each replica's and worker's caches and connections
        await run_many(url, "bench_one", 1, 50, concurrency=8)
    share = runs // len(fleet.urls)
    connections = CONNECTIONS // len(fleet.urls)
    cpu = fleet.cpu()
    started = time.perf_counter()
    loads = await asyncio.gather(
        *(run_many(url, "bench_one", 1, share, concurrency=connections) for url in fleet.urls)
    )
    elapsed = time.perf_counter() - started
    spent = fleet.cpu() - cpu
    for load in loads:
        load.raise_for_failures()
    done = share * len(fleet.urls)
    return done / elapsed, spent / done * 1e6


def _grid() -> list[tuple[int, int, float, float]]:
    """(replicas, workers, executions/s, CPU µs per execution) for each configuration, each
    on a fresh PostgreSQL database."""
    points = []
    for replicas in REPLICAS:
        for workers in WORKERS:
            created = _pg_database()
            assert created is not None
            url, name = created
            with tempfile.TemporaryDirectory() as tmp:
                fleet = Fleet(Path(tmp), url, replicas)
                try:
                    fleet.start(workers)
                    rate, cpu = asyncio.run(_load(fleet, RUNS))
                finally:
                    fleet.stop()
                    _drop_pg(name)
            print(f"  {replicas} replica(s), {workers} worker(s): {rate:,.0f}/s, {cpu:,.0f} µs",
                  file=sys.stderr, flush=True)  # fmt: skip
            points.append((replicas, workers, rate, cpu))
    return points


def _growth(database_url: str, seed: Any) -> list[tuple[int, float, float]]:
    """(rows in the table, executions/s, CPU µs per execution): one replica, one worker."""
    points = []
    workflow_ids = asyncio.run(_migrate(database_url))
    seeded = 0
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            if size > seeded:
                t0 = time.perf_counter()
                seed(workflow_ids, size - seeded, seeded)
                print(f"  seeded {size - seeded:,} rows in {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr, flush=True)  # fmt: skip
                seeded = size
            fleet = Fleet(Path(tmp), database_url, 1)
            try:
                fleet.start(1)
                rate, cpu = asyncio.run(_load(fleet, RUNS))
            finally:
                fleet.stop()
            print(f"  {size:,} rows: {rate:,.0f}/s, {cpu:,.0f} µs", file=sys.stderr, flush=True)
            points.append((size, rate, cpu))
    return points


def _plot(grid: list[tuple[int, int, float, float]], growth: dict[str, list[Any]]) -> None:
    if not PLOT:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for replicas in REPLICAS:
        row = [(w, rate) for r, w, rate, _ in grid if r == replicas]
        if row:
            left.plot(*zip(*row, strict=True), marker="o", label=f"{replicas} replica(s)")
    left.set(xlabel="workers", ylabel="executions/s", title="PostgreSQL, one-task workflows")
    left.set_xticks(list(WORKERS))
    for label, points in growth.items():
        right.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    right.set(xlabel="executions in the table", ylabel="executions/s", title="table growth")
    right.ticklabel_format(axis="x", style="plain")
    for axes in (left, right):
        if axes.lines:
            axes.legend()
    fig.tight_layout()
    Path(PLOT).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    print(f"plot written to {PLOT}", file=sys.stderr)


def main() -> list[Figure]:
    executable()  # the load comes from wrk
    which = os.environ.get("FLUX_BENCH_DB", "both")
    rows: list[Figure] = []
    grid: list[tuple[int, int, float, float]] = []
    growth: dict[str, list[Any]] = {}
    if which in ("postgres", "both"):
        probe = _pg_database()
        if probe is None:
            print("PostgreSQL not reachable: skipping the scale curve", file=sys.stderr)
        else:
            _drop_pg(probe[1])
            grid = _grid()
            for replicas, workers, rate, cpu in grid:
                label = f"postgres {replicas} replica(s), {workers} worker(s)"
                rows.append((f"{label} executions/s", rate, "wf/s", "-"))
                rows.append((f"{label} CPU per execution", cpu, "us", "-"))
            created = _pg_database()
            assert created is not None
            url, name = created
            try:
                growth["postgres"] = _growth(url, lambda ids, n, start: _seed_postgres(
                    url, ids, n, start, events=False, states=FINISHED))  # fmt: skip
            finally:
                _drop_pg(name)
    if which in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "growth.db"
            growth["sqlite"] = _growth(f"sqlite:///{path}", lambda ids, n, start: _seed_sqlite(
                path, ids, n, start, events=False, states=FINISHED))  # fmt: skip
    for label, points in growth.items():
        for size, rate, cpu in points:
            rows.append((f"{label} {size:,} rows executions/s", rate, "wf/s", "-"))
            rows.append((f"{label} {size:,} rows CPU per execution", cpu, "us", "-"))
    _plot(grid, growth)
    return rows
