"""Server + worker benchmarks: real processes on loopback, figures from server-stamped times.

Set FLUX_BENCH_DB=sqlite|postgres|both (default both when PostgreSQL answers).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from flux.client import AsyncFluxClient

from bench.wrk import executable, run_many

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("FLUX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
N_DISPATCH = int(os.environ.get("FLUX_BENCH_DISPATCH", "200"))
N_WORKFLOWS = int(os.environ.get("FLUX_BENCH_WORKFLOWS", "1000"))
REPLAY_SIZES = (0, 1000, 4000)
REPLAY_ROUNDS = 5


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


class Cluster:
    def __init__(self, home: Path, database_url: str) -> None:
        self.home = home
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FLUX_")}
        self.env.update({"FLUX_HOME": str(home), "FLUX_LOG_LEVEL": "WARNING"})
        self.procs: list[subprocess.Popen[bytes]] = []
        self.worker_args: list[str] = []
        """More ``flux-worker`` options for every worker started."""
        self.headers: dict[str, str] = {}
        """Sent with the cluster's own checks (an ``Authorization`` when authentication is on)."""

    def start(self, workers: int) -> None:
        log = open(self.home / "server.log", "ab")
        cmd = [sys.executable, "-m", "flux_server", "--host", "127.0.0.1",
               "--port", str(self.port), "--database-url", self.database_url]  # fmt: skip
        self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log))
        self._wait(lambda: httpx.get(f"{self.url}/health", timeout=1).status_code == 200)
        sqlite = self.database_url.startswith("sqlite:///")
        if sqlite and os.environ.get("FLUX_BENCH_WITHOUT_LISTING_SCHEMA") == "1":
            drop_listing_schema(Path(self.database_url.removeprefix("sqlite:///")))
        for i in range(workers):
            self.add_worker(f"bench-{i}")

    def add_worker(self, name: str) -> subprocess.Popen[bytes]:
        log = open(self.home / f"{name}.log", "ab")
        cmd = [sys.executable, "-m", "flux_worker", name, "--server-url", self.url,
               "--home", str(self.home), "--capacity", "64", *self.worker_args]  # fmt: skip
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log)
        self.procs.append(proc)
        self._wait(
            lambda: any(
                w["name"] == name and w["connected"]
                for w in httpx.get(f"{self.url}/workers", headers=self.headers, timeout=1).json()
            )
        )
        return proc

    def _wait(self, check: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        logs = "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:])
            for path in sorted(self.home.glob("*.log"))
        )
        raise RuntimeError(f"cluster did not come up in {timeout:.0f} s:\n{logs}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


LISTING_INDEXES = {
    "ix_executions_workflow_name_state_created_at": "workflow_name, state, created_at",
    "ix_executions_worker_name_state_created_at": "worker_name, state, created_at",
}
"""The indexes listing executions added (revision 0004), with their columns."""
COUNT_TRIGGERS = (
    "executions_counted_insert",
    "executions_counted_update",
    "executions_counted_delete",
)
"""The triggers that keep ``execution_counts`` (revisions 0004 and 0011)."""


def drop_listing_schema(db: Path) -> None:
    """Take what listing executions adds to every write (its indexes and count triggers) out
    of a migrated SQLite file (``FLUX_BENCH_WITHOUT_LISTING_SCHEMA=1``), to compare a commit
    from before listing with this one without it. Listings' counts are wrong from then on;
    a file of a commit without them is left as it is."""
    with sqlite3.connect(db, timeout=60) as conn:
        for name in COUNT_TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        for name in LISTING_INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {name}")


class _CpuMeter:
    """CPU seconds of the server and worker processes over a phase, from psutil.

    Throughput on a shared VM drifts with its speed; CPU per execution drifts less and tells
    a slower moment from a costlier code path.
    """

    def __init__(self, cluster: Cluster) -> None:
        import psutil

        server, *workers = cluster.procs
        self._server = psutil.Process(server.pid)
        self._workers = [psutil.Process(w.pid) for w in workers]
        url = cluster.database_url
        self._database = url.rsplit("/", 1)[1] if url.startswith("postgresql") else None
        """The cluster's PostgreSQL database, whose backends' CPU is read too (else ``None``)."""
        self._start = self._read()
        self._backends_start = self._backends()

    def _read(self) -> tuple[float, float]:
        def cpu(proc: Any) -> float:
            times = proc.cpu_times()
            return float(times.user + times.system)

        return cpu(self._server), sum(cpu(w) for w in self._workers)

    def _backends(self) -> dict[int, float]:
        """CPU seconds so far of each PostgreSQL backend serving the cluster's database."""
        if self._database is None:
            return {}
        import psutil
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            query = "SELECT pid FROM pg_stat_activity WHERE datname = %s"
            pids = [pid for (pid,) in conn.execute(query, (self._database,))]
        spent = {}
        for pid in pids:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:  # it ended meanwhile
                continue
            spent[pid] = times.user + times.system
        return spent

    def restart(self) -> None:
        self._start = self._read()
        self._backends_start = self._backends()

    def database(self) -> float | None:
        """CPU seconds of the PostgreSQL backends serving the cluster's database since the
        start (``None`` on SQLite, whose work is the server's own): those alive at the end,
        from the start or from their own start; a backend that ended meanwhile is not
        counted (the server's connections are pooled, so few do)."""
        if self._database is None:
            return None
        start = self._backends_start
        return sum(t - start.get(pid, 0.0) for pid, t in self._backends().items())

    def spent(self) -> tuple[float, float]:
        """Server and worker (all workers) CPU seconds since the start."""
        server, workers = self._read()
        return server - self._start[0], workers - self._start[1]


def _cpu_rows(
    label: str,
    what: str,
    spent: tuple[float, float],
    per: int,
    scale: float,
    unit: str,
    database: float | None = None,
) -> list[tuple[str, float, str, str]]:
    server, workers = (s / per * scale for s in spent)
    rows = [
        (f"{label} server CPU per {what}", server, unit, "-"),
        (f"{label} worker CPU per {what}", workers, unit, "-"),
        (f"{label} server+worker CPU per {what}", server + workers, unit, "-"),
    ]
    if database is not None:  # PostgreSQL's own processes, which share the machine
        rows.append((f"{label} database CPU per {what}", database / per * scale, unit, "-"))
    return rows


async def _measure(cluster: Cluster, workers: int, label: str) -> list[tuple[str, float, str, str]]:
    url = cluster.url
    meter = _CpuMeter(cluster)
    rows: list[tuple[str, float, str, str]] = []
    async with AsyncFluxClient(url, timeout=120) as client:
        await client.register_workflows(ROOT / "bench" / "workflows.py")
        for _ in range(20):  # warm up module cache and connections
            await client.run("bench_one", 1, mode="sync")
        if workers == 1:
            latencies = []
            for _ in range(N_DISPATCH):
                st = await client.run("bench_one", 1, mode="sync")
                detail = await client.status("bench_one", st.execution_id, detailed=True)
                started = next(e.time for e in detail.events or [] if e.type == "WORKFLOW_STARTED")
                latencies.append((started - detail.created_at).total_seconds() * 1e3)
            rows += [
                (f"{label} dispatch p50", _pct(latencies, 50), "ms", "<= 5"),
                (f"{label} dispatch p95", _pct(latencies, 95), "ms", "-"),
                (f"{label} dispatch p99", _pct(latencies, 99), "ms", "<= 25"),
            ]

        # The throughput phases take their load from wrk (bench.wrk), not from this client:
        # on a small machine a Python client's CPU is taken from the processes being measured.
        health: list[float] = []
        stop = asyncio.Event()

        async def probe() -> None:
            async with httpx.AsyncClient(base_url=url) as h:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    await h.get("/health")
                    health.append((time.perf_counter() - t0) * 1e3)
                    await asyncio.sleep(0.02)

        prober = asyncio.create_task(probe())
        meter.restart()
        load = await run_many(url, "bench_one", 1, N_WORKFLOWS, concurrency=64)
        spent = meter.spent()
        database = meter.database()
        stop.set()
        await prober
        load.raise_for_failures()
        rows.append((f"{label} workflows/s ({workers} worker)", load.rate, "wf/s", ">= 500"))
        what = f"workflow ({workers} worker)"
        rows += _cpu_rows(label, what, spent, N_WORKFLOWS, 1e6, "us", database)
        if health:
            rows.append((f"{label} /health p99 under load", _pct(health, 99), "ms", "-"))
        rows.append((f"{label} client CPU during workflows/s", load.cpu_share * 100, "% core", "-"))

        n_wf, n_tasks = 20, 500
        meter.restart()
        load = await run_many(url, "bench_tasks", n_tasks, n_wf, concurrency=n_wf)
        spent = meter.spent()
        database = meter.database()
        load.raise_for_failures()
        rate = n_wf * n_tasks / load.elapsed
        rows.append((f"{label} tasks/s ({workers} worker)", rate, "tasks/s", ">= 3000"))
        what = f"task ({workers} worker)"
        rows += _cpu_rows(label, what, spent, n_wf * n_tasks, 1e6, "us", database)

        if workers == 1:
            # Rounds over the history sizes rather than one size after another: the database
            # is still catching up on the load phases (autovacuum, a checkpoint) for a while,
            # and a size measured only first would carry all of that.
            samples: dict[int, list[float]] = {n: [] for n in REPLAY_SIZES}
            for _ in range(REPLAY_ROUNDS):
                for n in REPLAY_SIZES:
                    st = await client.run("bench_replay", n, mode="sync")
                    t1 = time.perf_counter()
                    await client.resume("bench_replay", st.execution_id, None, mode="sync")
                    samples[n].append(time.perf_counter() - t1)
            fixed = statistics.median(samples[0])
            largest = REPLAY_SIZES[-1]
            marginal = (statistics.median(samples[largest]) - fixed) / largest
            rows.append((f"{label} replay fixed cost", fixed * 1e3, "ms", "<= 20"))
            rows.append((f"{label} replay per task of history", marginal * 1e6, "us", "<= 20"))
    return rows


def _pg_database() -> tuple[str, str] | None:
    try:
        import psycopg
    except ImportError:
        return None
    name = f"flux_bench_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    except Exception:
        return None
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, name


def cluster_database(folder: Path, database: str, created: list[str]) -> str:
    """The database URL for a cluster whose home is ``folder``: a SQLite file there, or, with
    ``database == "postgres"``, a new PostgreSQL database whose name is added to ``created``
    (for :func:`_drop_pg` once the cluster stops).

    Raises:
        RuntimeError: PostgreSQL does not answer.
    """
    if database != "postgres":
        return f"sqlite:///{folder}/flux.db"
    made = _pg_database()
    if made is None:
        raise RuntimeError("PostgreSQL does not answer at FLUX_TEST_PG")
    created.append(made[1])
    return made[0]


def _drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _run_backend(label: str, url_for: Any) -> list[tuple[str, float, str, str]]:
    rows: list[tuple[str, float, str, str]] = []
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            cluster = Cluster(Path(tmp), url_for(Path(tmp)))
            try:
                cluster.start(workers)
                rows += asyncio.run(_measure(cluster, workers, label))
                if workers == 1:
                    import psutil

                    time.sleep(2)
                    rss = psutil.Process(cluster.procs[1].pid).memory_info().rss / 2**20
                    rows.append((f"{label} worker RSS after the run", rss, "MiB", "-"))
            finally:
                cluster.stop()
    return rows


def idle_worker_rss() -> list[tuple[str, float, str, str]]:
    import psutil

    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp), f"sqlite:///{tmp}/flux.db")
        try:
            cluster.start(1)
            time.sleep(2)
            rss = psutil.Process(cluster.procs[1].pid).memory_info().rss / 2**20
        finally:
            cluster.stop()
    return [("worker idle RSS", rss, "MiB", "<= 80")]


def main() -> list[tuple[str, float, str, str]]:
    executable()  # before any cluster starts: the load comes from wrk
    which = os.environ.get("FLUX_BENCH_DB", "both")
    rows = idle_worker_rss()
    if which in ("sqlite", "both"):
        rows += _run_backend("sqlite", lambda home: f"sqlite:///{home}/flux.db")
    if which in ("postgres", "both"):
        if _pg_database_probe():
            # A database per cluster: each cluster's home holds its own secrets key, which
            # a server checks against the database's.
            databases: list[str] = []
            try:
                rows += _run_backend(
                    "postgres", lambda home: cluster_database(home, "postgres", databases)
                )
            finally:
                for name in databases:
                    _drop_pg(name)
        else:
            print("PostgreSQL not reachable: skipping the postgres figures", file=sys.stderr)
    return rows


def _pg_database_probe() -> bool:
    created = _pg_database()
    if created is not None:
        _drop_pg(created[1])
    return created is not None
