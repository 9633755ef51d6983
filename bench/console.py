"""The web console's cost on the server: pages over 100,000 executions and over one execution
of 5,000 events, rendered by a real server process, and the CPU one open execution page costs
the server while its execution waits and while it runs.

    python -m bench console
    FLUX_BENCH_DB=sqlite python -m bench console

The executions are seeded as ``bench.listing`` seeds them (bulk insert into a migrated
database); the big execution's history is inserted the same way: 2,499 task calls between its
start and its end. Each page is requested ``REQUESTS`` times from a client on loopback after a
warm-up; p50 and p95 of the whole request are reported (the server renders every byte of it).

The CPU figures come from a server with one worker: a workflow that runs a task every 50 ms for
``LIVE_SECONDS``, run twice, once with nobody watching and once with its console page's live
stream open; the difference of the server's CPU time over the run's wall time is the page's
cost. The same for a paused execution, whose page waits without reading.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import listing
from bench.server import Cluster, _drop_pg, _pct, _pg_database

ROWS = int(os.environ.get("FLUX_BENCH_CONSOLE_ROWS", "100000"))
REQUESTS = int(os.environ.get("FLUX_BENCH_CONSOLE_REQUESTS", "20"))
EVENTS = 5000
LIVE_SECONDS = float(os.environ.get("FLUX_BENCH_CONSOLE_LIVE_SECONDS", "10"))
BIG = "b" * 32
"""The id of the execution with :data:`EVENTS` events."""

Figure = tuple[str, float, str, str]

WORKFLOWS = """
import asyncio

from flux import ExecutionContext, task, workflow
from flux.tasks import pause


@task
async def tick(i: int) -> int:
    await asyncio.sleep(0.05)
    return i


@workflow
async def ticking(ctx: ExecutionContext[int]) -> int:
    for i in range(ctx.input):
        await tick(i)
    return ctx.input


@workflow
async def waiting(ctx: ExecutionContext) -> str:
    return await pause("later")
"""


async def _big_execution(url: str, workflow_id: str) -> None:
    """One completed execution whose history is :data:`EVENTS` events long."""
    import sqlalchemy as sa
    from flux_server.db import Database
    from flux_server.db.tables import events, executions

    t0 = listing.T0 + listing.STEP * ROWS
    rows = [("WORKFLOW_STARTED", BIG, "flow_0", {"order": 1})]
    for k in range((EVENTS - 2) // 2):
        rows += [
            ("TASK_STARTED", f"step:{k}", "step", [k]),
            ("TASK_COMPLETED", f"step:{k}", "step", k),
        ]
    rows.append(("WORKFLOW_COMPLETED", BIG, "flow_0", "done"))
    db = Database(url)
    try:
        async with db.write() as tx:
            await tx.conn.execute(
                sa.insert(executions).values(
                    id=BIG,
                    workflow_id=workflow_id,
                    workflow_name="flow_0",
                    workflow_version=1,
                    state="COMPLETED",
                    input_view={"order": 1},
                    output_view="done",
                    worker_name="bench-0",
                    generation=1,
                    created_at=t0,
                    updated_at=t0 + timedelta(seconds=len(rows) / 100),
                )
            )
            await tx.conn.execute(
                sa.insert(events),
                [
                    {
                        "id": f"big-{n}",
                        "execution_id": BIG,
                        "type": kind,
                        "source_id": source,
                        "name": name,
                        "scope": "",
                        "time": t0 + timedelta(seconds=n / 100),
                        "view": view,
                    }
                    for n, (kind, source, name, view) in enumerate(rows)
                ],
            )
    finally:
        await db.dispose()


def _time(cluster: Cluster, client: httpx.Client, path: str) -> tuple[float, float, float]:
    """p50 and p95 of the request's time, and the server's CPU time per request (which a
    busy machine inflates far less than the time)."""
    for _ in range(3):
        client.get(path).raise_for_status()
    samples = []
    cpu0 = _server_cpu(cluster)
    for _ in range(REQUESTS):
        t0 = time.perf_counter()
        client.get(path).raise_for_status()
        samples.append((time.perf_counter() - t0) * 1e3)
    cpu = (_server_cpu(cluster) - cpu0) / REQUESTS * 1e3
    return statistics.median(samples), _pct(samples, 95), cpu


def _pages(cluster: Cluster, label: str) -> list[Figure]:
    with httpx.Client(base_url=cluster.url, timeout=120) as client:
        cursor = client.get("/executions").json()["next_cursor"]
        events = client.get(f"/executions/{BIG}/events", params={"limit": 1000}).json()
        middle = events["items"][500]["position"]
        cases = [
            ("overview", "/console", "-"),
            ("executions, no filter", "/console/executions", "<= 100"),
            ("executions, state=FAILED", "/console/executions?state=FAILED", "<= 100"),
            (
                "executions, workflow+state",
                "/console/executions?workflow=flow_3&state=COMPLETED",
                "<= 100",
            ),
            ("executions, next page", f"/console/executions?cursor={cursor}", "<= 100"),
            (f"execution of {EVENTS:,} events", f"/console/executions/{BIG}", "<= 100"),
            (
                f"execution of {EVENTS:,} events, a later page",
                f"/console/executions/{BIG}?after={middle}",
                "<= 100",
            ),
            ("workers", "/console/workers", "-"),
        ]
        figures: list[Figure] = []
        for name, path, target in cases:
            p50, p95, cpu = _time(cluster, client, path)
            figures.append((f"{label} {name} p50", p50, "ms", target))
            figures.append((f"{label} {name} p95", p95, "ms", "-"))
            figures.append((f"{label} {name}, server CPU a request", cpu, "ms", "-"))
    return figures


def _server_cpu(cluster: Cluster) -> float:
    import psutil

    times = psutil.Process(cluster.procs[0].pid).cpu_times()
    return float(times.user + times.system)


def _watch(url: str, stop: threading.Event) -> None:
    """Hold an execution page's live stream open, reading what it sends, until ``stop``."""
    with httpx.Client(timeout=None) as client, client.stream("GET", url) as answer:
        for _ in answer.iter_lines():
            if stop.is_set():
                return


def _cpu_while(cluster: Cluster, seconds: float, live: str | None, run: Any = None) -> float:
    """The server's CPU share over ``seconds`` (until ``run`` returns, when given), with the
    live stream ``live`` open or not."""
    stop = threading.Event()
    watcher = None
    if live is not None:
        watcher = threading.Thread(target=_watch, args=(cluster.url + live, stop), daemon=True)
        watcher.start()
        time.sleep(0.5)  # the stream is open before the measure starts
    cpu0, t0 = _server_cpu(cluster), time.perf_counter()
    if run is not None:
        run()
    else:
        time.sleep(seconds)
    cpu, wall = _server_cpu(cluster) - cpu0, time.perf_counter() - t0
    stop.set()
    return cpu / wall * 100


def _live_cost(label: str) -> list[Figure]:
    """What one open execution page costs the server (SQLite, one worker)."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        cluster = Cluster(home, f"sqlite:///{home / 'flux.db'}")
        try:
            cluster.start(1)
            source = home / "live.py"
            source.write_text(WORKFLOWS)
            with httpx.Client(base_url=cluster.url, timeout=120) as client:
                with source.open("rb") as fh:
                    client.post("/workflows", files={"file": fh}).raise_for_status()
                ticks = int(LIVE_SECONDS / 0.05)

                def start() -> str:
                    answer = client.post("/workflows/ticking/run/async", json=ticks)
                    return str(answer.raise_for_status().json()["execution_id"])

                def finish(execution_id: str) -> Any:
                    def wait() -> None:
                        while True:
                            state = client.get(f"/executions/{execution_id}").json()["state"]
                            if state == "COMPLETED":
                                return
                            time.sleep(0.2)

                    return wait

                alone_id = start()
                alone = _cpu_while(cluster, 0, None, finish(alone_id))
                watched_id = start()
                watched = _cpu_while(
                    cluster, 0, f"/console/executions/{watched_id}/live", finish(watched_id)
                )
                paused = client.post("/workflows/waiting/run/sync").json()["execution_id"]
                idle = _cpu_while(cluster, LIVE_SECONDS, None)
                idle_watched = _cpu_while(
                    cluster, LIVE_SECONDS, f"/console/executions/{paused}/live"
                )
        finally:
            cluster.stop()
    return [
        (f"{label} server CPU, execution running, no page open", alone, "% of a core", "-"),
        (f"{label} server CPU, execution running, its page open", watched, "% of a core", "-"),
        (f"{label} one open page while it runs", watched - alone, "% of a core", "<= 5"),
        (f"{label} server CPU, idle, no page open", idle, "% of a core", "-"),
        (
            f"{label} server CPU, idle, a paused execution's page open",
            idle_watched,
            "% of a core",
            "-",
        ),
        (f"{label} one open page while idle", idle_watched - idle, "% of a core", "<= 1"),
    ]


def _run(label: str, home: Path, url: str, seed: Any) -> list[Figure]:
    workflow_ids = asyncio.run(listing._migrate(url))
    t0 = time.perf_counter()
    seed(workflow_ids, ROWS)
    asyncio.run(_big_execution(url, workflow_ids[0]))
    print(
        f"{label}: seeded {ROWS:,} executions in {time.perf_counter() - t0:.1f} s", file=sys.stderr
    )
    cluster = Cluster(home, url)
    try:
        cluster.start(0)
        return _pages(cluster, label)
    finally:
        cluster.stop()


def main() -> list[Figure]:
    print(f"load average before: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    which = os.environ.get("FLUX_BENCH_DB", "both")
    figures: list[Figure] = []
    if which in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "flux.db"
            figures += _run(
                "sqlite",
                Path(tmp),
                f"sqlite:///{path}",
                lambda ids, n: listing._seed_sqlite(path, ids, n, events=False),
            )
    if which in ("postgres", "both"):
        created = _pg_database()
        if created is None:
            print("PostgreSQL not reachable: skipping the postgres figures", file=sys.stderr)
        else:
            url, name = created
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    figures += _run(
                        "postgres",
                        Path(tmp),
                        url,
                        lambda ids, n: listing._seed_postgres(url, ids, n, events=False),
                    )
            finally:
                _drop_pg(name)
    figures += _live_cost("sqlite")
    print(f"load average after: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return figures
