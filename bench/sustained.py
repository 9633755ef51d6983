"""Sustained load from a fresh start: sync runs at a fixed rate, latency per window of time.

One server and one worker on SQLite, started fresh; one-task sync runs at ``FLUX_BENCH_RATE``
runs/s (default 200) from 64 clients for ``FLUX_BENCH_SECONDS`` (default 90). The figures
are p50 / p99 / max per ``FLUX_BENCH_WINDOW`` seconds (default 5) by send time, so a slow
first minute shows apart from the rest, beside the CPU the server and the worker used per
run in that window and the machine's run queue (``procs_running``), which tell a slow
server from a server starved of CPU. Not in the default groups:
``make bench GROUPS=sustained``.

``FLUX_BENCH_CLIENT`` picks the clients: ``wrk`` (default; 64 connections of one wrk thread,
paced by ``bench/paced_runs.lua``), ``python`` (64 processes started together, each a
``FluxClient`` that sends as soon as it is ready: ``bench/client_ramp.py``) or
``python-ready`` (the same processes, the load starting once all of them are ready).
"""

from __future__ import annotations

import asyncio
import os
import resource
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from flux.client import AsyncFluxClient
from flux.protocol import PROTOCOL_VERSION

from bench.client_ramp import run_clients
from bench.server import ROOT, Cluster
from bench.wrk import executable

SCRIPT = Path(__file__).with_name("paced_runs.lua")
RATE = float(os.environ.get("FLUX_BENCH_RATE", "200"))
SECONDS = float(os.environ.get("FLUX_BENCH_SECONDS", "90"))
WINDOW = float(os.environ.get("FLUX_BENCH_WINDOW", "5"))
CLIENT = os.environ.get("FLUX_BENCH_CLIENT", "wrk")
CLIENTS = 64


@dataclass
class Window:
    index: int  # from 1
    sent: int
    answered: int
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    server_cpu_ms: float = 0.0  # per answered run
    worker_cpu_ms: float = 0.0
    run_queue: float = 0.0  # the machine's runnable processes, on average

    @property
    def span(self) -> str:
        return f"{(self.index - 1) * WINDOW:.0f}-{self.index * WINDOW:.0f}"


@dataclass
class Load:
    start: float  # time.monotonic() at the start of the load
    windows: list[Window] = field(default_factory=list)
    client_cpu: float = 0.0  # seconds
    problems: list[str] = field(default_factory=list)
    last_ready: float | None = None
    """Seconds from the start of the load until the last client was ready (negative: before)."""


class Sampler:
    """CPU seconds of the server and the worker and the machine's run queue, once a second."""

    def __init__(self, pids: list[int]) -> None:
        self.samples: list[tuple[float, list[float], int]] = []
        self._pids = pids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic(), [_cpu_of(p) for p in self._pids], _running()))
            if self._stop.wait(1.0):
                return

    def fill(self, load: Load) -> None:
        """Add each window's CPU per run and run queue to ``load``."""
        for w in load.windows:
            lo, hi = load.start + (w.index - 1) * WINDOW, load.start + w.index * WINDOW
            inside = [s for s in self.samples if lo <= s[0] <= hi]
            if inside:
                w.run_queue = sum(s[2] for s in inside) / len(inside)
            if len(inside) < 2 or not w.answered:
                continue
            (_, first, _), (_, last, _) = inside[0], inside[-1]
            # The CPU of the samples' span, scaled to the whole window, per run answered.
            scale = WINDOW / (inside[-1][0] - inside[0][0]) / w.answered * 1e3
            w.server_cpu_ms = (last[0] - first[0]) * scale
            w.worker_cpu_ms = (last[1] - first[1]) * scale


def _cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _running() -> int:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("procs_running "):
                return int(line.split()[1])
    return 0


async def paced_wrk(url: str, workflow: str) -> Load:
    """Run ``workflow`` at ``RATE`` for ``SECONDS`` over ``CLIENTS`` connections of wrk."""
    target = f"{url}/workflows/{quote(workflow, safe='')}/run/sync"
    command = [executable(), "-t1", f"-c{CLIENTS}", f"-d{SECONDS:.0f}s", "--timeout=60s",
               "-s", str(SCRIPT), target,
               "--", str(RATE), str(WINDOW), PROTOCOL_VERSION]  # fmt: skip
    before = _children_cpu()
    load = Load(time.monotonic())
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    load.client_cpu = _children_cpu() - before
    for line in out.decode(errors="replace").splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "flux-wrk-window":
            f = _fields(rest)
            load.windows.append(Window(f["index"], f["sent"], f["answered"], f["p50_us"] / 1e3,
                                       f["p99_us"] / 1e3, f["max_us"] / 1e3))  # fmt: skip
        elif kind == "flux-wrk-failure":
            load.problems.append(rest)
        elif kind == "flux-wrk-summary":
            f = _fields(rest)
            if any(f[k] for k in ("failed", "connect", "read", "write", "timeout")):
                load.problems.insert(0, line)
    if not load.windows:
        load.problems.append(f"wrk printed no windows (exit {process.returncode}): {out[-500:]!r}")
    return load


async def paced_python(url: str, workflow: str) -> Load:
    """The same load from ``CLIENTS`` Python client processes started together."""
    before = _children_cpu()
    ready_first = CLIENT == "python-ready"
    start, runs, ready, problems = await run_clients(
        url, workflow, RATE, CLIENTS, SECONDS, ready_first
    )
    load = Load(start, [], _children_cpu() - before, problems, max(ready, default=None))
    # Whole windows only: the last one's answers would be cut short.
    for index in range(1, int(SECONDS // WINDOW) + 1):
        lo, hi = (index - 1) * WINDOW, index * WINDOW
        values = sorted(latency * 1e3 for sent, latency in runs if lo <= sent < hi)
        w = Window(index, len(values), len(values))
        if values:
            w.p50_ms, w.p99_ms, w.max_ms = _pick(values, 50), _pick(values, 99), values[-1]
        load.windows.append(w)
    return load


def _pick(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


def _fields(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (item.split("=", 1) for item in text.split())}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _measure(url: str) -> Load:
    async with AsyncFluxClient(url, timeout=60) as client:
        await client.register_workflows(ROOT / "bench" / "workflows.py")
    if CLIENT.startswith("python"):
        return await paced_python(url, "bench_one")
    return await paced_wrk(url, "bench_one")


def table(windows: list[Window]) -> str:
    """The windows as a Markdown table."""
    rows = [
        "| window (s) | sent/s | p50 ms | p99 ms | max ms | server CPU ms/run | "
        "worker CPU ms/run | run queue |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in windows:
        figures = (
            f"{w.p50_ms:.1f} | {w.p99_ms:.1f} | {w.max_ms:.1f} | {w.server_cpu_ms:.2f} | "
            f"{w.worker_cpu_ms:.2f}"
            if w.answered
            else "- | - | - | - | -"
        )
        rows.append(f"| {w.span} | {w.sent / WINDOW:.0f} | {figures} | {w.run_queue:.1f} |")
    return "\n".join(rows)


def main() -> list[tuple[str, float, str, str]]:
    if not CLIENT.startswith("python"):
        executable()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp), f"sqlite:///{tmp}/flux.db")
        try:
            cluster.start(1)
            load_average = os.getloadavg()[0]
            with Sampler([p.pid for p in cluster.procs]) as sampler:
                load = asyncio.run(_measure(cluster.url))
            sampler.fill(load)
        finally:
            cluster.stop()
    print(f"sustained: {RATE:.0f} runs/s from {CLIENTS} {CLIENT} clients for {SECONDS:.0f} s; "
          f"load average {load_average:.2f} at the start")  # fmt: skip
    print(table(load.windows))
    for problem in load.problems:
        print(f"  problem: {problem}")
    first = [w.p99_ms for w in load.windows if w.index * WINDOW <= 60]
    rest = [w.p99_ms for w in load.windows if w.index * WINDOW > 60]
    rows = [
        ("sustained p99, worst window of the first 60 s", max(first, default=0), "ms", "-"),
        ("sustained p99, worst window after 60 s", max(rest, default=0), "ms", "-"),
        ("sustained client CPU", load.client_cpu / SECONDS * 100, "% core", "-"),
    ]
    if load.last_ready is not None:
        rows.append(("sustained: last client ready, from the start", load.last_ready, "s", "-"))
    return rows
