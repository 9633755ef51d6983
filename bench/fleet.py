"""Losing a server replica under load: two servers on one PostgreSQL database, two workers and
a client that know both. Clients run ``bench_tasks`` (3 tasks) in sync mode for a while, then
replica a is killed (SIGKILL) or drained (SIGTERM); the load goes on through replica b.

Figures per way of losing it (medians of ``FLUX_BENCH_FLEET_TRIALS`` trials, default 3):
executions/s before and after (the windows before the loss and after recovery), the stall
(the longest time without a completed run around the loss: what a client sees), and for
SIGTERM the time the replica took to drain and exit.

python -m bench fleet
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from flux.client import AsyncFluxClient

from bench.server import _drop_pg, _free_port, _pg_database

ROOT = Path(__file__).resolve().parent.parent
TRIALS = int(os.environ.get("FLUX_BENCH_FLEET_TRIALS", "3"))
CLIENTS = 8
"""Concurrent sync runs."""
BEFORE = 6.0
AFTER = 8.0
"""Seconds of load before the loss and after it."""
SKIP = 1.0
"""Seconds left out at the start of each window (warm-up; recovery is measured apart)."""
TOKEN = "bench-fleet-bootstrap-token-0123456789"
KEY = "bench-fleet-secrets-key-0123456789abcdef"


class Replicas:
    """Two servers on ``database_url`` and two workers that know both (w0 prefers a, w1 b)."""

    def __init__(self, home: Path, database_url: str) -> None:
        self.home = home
        self.database_url = database_url
        self.urls = [f"http://127.0.0.1:{_free_port()}" for _ in range(2)]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FLUX_")}
        self.env.update(
            FLUX_HOME=str(home),
            FLUX_LOG_LEVEL="WARNING",
            FLUX_WORKERS__BOOTSTRAP_TOKEN=TOKEN,
            FLUX_SECURITY__ENCRYPTION_KEY=KEY,
        )
        self.servers: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self.home / f"{name}.log", "ab") as log:
            return subprocess.Popen(argv, env=self.env, stdout=log, stderr=log)

    def start(self) -> None:
        for i, url in enumerate(self.urls):
            port = url.rsplit(":", 1)[1]
            self.servers.append(
                self._spawn(
                    f"server-{i}",
                    [sys.executable, "-m", "flux_server", "--host", "127.0.0.1", "--port", port,
                     "--database-url", self.database_url],
                )
            )  # fmt: skip
            _wait(lambda u=url: httpx.get(f"{u}/health", timeout=1).status_code == 200)
        for i in range(2):
            order = self.urls if i == 0 else self.urls[::-1]
            self.workers.append(
                self._spawn(
                    f"worker-{i}",
                    [sys.executable, "-m", "flux_worker", f"w{i}", "--server-url", ",".join(order),
                     "--home", str(self.home), "--capacity", "64"],
                )
            )  # fmt: skip

        def connected() -> bool:
            workers = httpx.get(f"{self.urls[1]}/workers", timeout=1).json()
            return sum(w["connected"] for w in workers) == 2

        _wait(connected)

    def stop(self) -> None:
        for proc in [*self.workers, *self.servers]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.workers, *self.servers]:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.05)
    raise RuntimeError("the replicas did not come up")


async def _trial(replicas: Replicas, how: str) -> dict[str, float]:
    done: list[float] = []
    stop = asyncio.Event()
    async with AsyncFluxClient(replicas.urls, timeout=60) as client:
        await client.register_workflows(ROOT / "bench" / "workflows.py")

        async def load() -> None:
            while not stop.is_set():
                status = await client.run("bench_tasks", 3, mode="sync")
                assert status.state == "COMPLETED", status
                done.append(time.monotonic())

        tasks = [asyncio.create_task(load()) for _ in range(CLIENTS)]
        start = time.monotonic()
        await asyncio.sleep(BEFORE)  # the load runs meanwhile
        lost_at = time.monotonic()
        victim = replicas.servers[0]
        drain = 0.0
        if how == "SIGKILL":
            victim.kill()
        else:
            victim.send_signal(signal.SIGTERM)
            await asyncio.to_thread(victim.wait, 60)
            drain = time.monotonic() - lost_at
        await asyncio.sleep(AFTER - drain)
        stop.set()
        await asyncio.gather(*tasks)
        end = time.monotonic()
    around = [lost_at, *sorted(t for t in done if t > lost_at)]
    stall, recovered = max(
        ((b - a, b) for a, b in itertools.pairwise(around)),
        default=(end - lost_at, end),
    )

    def rate(a: float, b: float) -> float:
        if b - a < 1.0:
            return float("nan")  # too short a window to say (a stall nearly as long as it)
        return sum(1 for t in done if a <= t < b) / (b - a)

    return {
        "before": rate(start + SKIP, lost_at),
        "after": rate(recovered + SKIP, end),
        "stall": stall,
        "drain": drain,
    }


def main() -> list[tuple[str, float, str, str]]:
    created = _pg_database()
    if created is None:
        print("PostgreSQL not reachable: skipping the fleet figures", file=sys.stderr)
        return []
    url, name = created
    results: dict[str, list[dict[str, float]]] = {"SIGKILL": [], "SIGTERM": []}
    try:
        for _ in range(TRIALS):
            for how in results:
                with tempfile.TemporaryDirectory() as tmp:
                    replicas = Replicas(Path(tmp), url)
                    try:
                        replicas.start()
                        results[how].append(asyncio.run(_trial(replicas, how)))
                    finally:
                        replicas.stop()
    finally:
        _drop_pg(name)
    rows: list[tuple[str, float, str, str]] = []
    for how, trials in results.items():
        for key, label, unit in (
            ("before", "executions/s before", "1/s"),
            ("after", "executions/s after", "1/s"),
            ("stall", "longest stall", "ms"),
            ("drain", "drain and exit", "ms"),
        ):
            if key == "drain" and how == "SIGKILL":
                continue
            values = [t[key] * (1000 if unit == "ms" else 1) for t in trials]
            values = [v for v in values if v == v] or [float("nan")]  # NaN: no window
            spread = f"{min(values):,.0f} to {max(values):,.0f}" if len(values) > 1 else "-"
            name = f"{how} replica a: {label} (range {spread})"
            rows.append((name, statistics.median(values), unit, "-"))
    return rows
