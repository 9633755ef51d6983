"""In-process engine benchmarks: every task durable in SQLite (WAL), as users run them."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flux import ExecutionContext, task, workflow
from flux.store import LocalStore
from flux.tasks import parallel, pause

REPEATS = int(os.environ.get("FLUX_BENCH_REPEATS", "5"))


@task
async def noop(i: int) -> int:
    return i


@workflow
async def seq1000(ctx: ExecutionContext[int]) -> int:
    total = 0
    for i in range(ctx.input or 1000):
        total += await noop(i)
    return total


@workflow
async def fanout1000(ctx: ExecutionContext[int]) -> list[int]:
    return await parallel(*(noop(i) for i in range(ctx.input or 1000)))


@workflow
async def one_task(ctx: ExecutionContext[int]) -> int:
    return await noop(1)


@workflow
async def long_history(ctx: ExecutionContext[int]) -> int:
    for i in range(ctx.input or 4999):
        await noop(i)
    await pause("end")
    return 0


def _median_time(fn: Any, repeats: int = REPEATS, setup: Any = None) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn`` (CPU: this process, its threads included)."""
    walls, cpus = [], []
    for _ in range(repeats):
        arg = setup() if setup else None
        t0, c0 = time.perf_counter(), time.process_time()
        fn(arg) if setup else fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def run(store_dir: Path) -> list[tuple[str, float, str, str]]:
    """Return rows of (name, value, unit, target)."""
    store = LocalStore(store_dir / "bench.db")
    rows: list[tuple[str, float, str, str]] = []
    seq1000.run(10, store=store)  # warm the file and the code paths

    t, cpu = _median_time(lambda: seq1000.run(1000, store=store))
    rows.append(("seq1000 (per task)", t / 1000 * 1e6, "us", "<= 60"))
    rows.append(("seq1000 CPU per task", cpu / 1000 * 1e6, "us", "-"))
    t, cpu = _median_time(lambda: fanout1000.run(1000, store=store))
    rows.append(("fanout1000 (per task)", t / 1000 * 1e6, "us", "<= 30"))
    rows.append(("fanout1000 CPU per task", cpu / 1000 * 1e6, "us", "-"))

    def wf200() -> None:
        for _ in range(200):
            one_task.run(1, store=store)

    t, cpu = _median_time(wf200)
    rows.append(("wf200 (workflows/s)", 200 / t, "wf/s", ">= 2000"))
    rows.append(("wf200 CPU per workflow", cpu / 200 * 1e6, "us", "-"))

    def paused_history(_: Any = None) -> str:
        ctx = long_history.run(4999, store=store)
        assert ctx.is_paused
        return ctx.execution_id

    def resume(execution_id: str) -> None:
        ctx = long_history.run(None, execution_id=execution_id, store=store)
        assert ctx.has_succeeded and len(ctx.events) >= 10_000, ctx

    t, cpu = _median_time(resume, repeats=max(3, REPEATS // 2), setup=paused_history)
    rows.append(("resume 10,000-event history", t * 1e3, "ms", "<= 200"))
    rows.append(("resume 10,000-event history, CPU", cpu * 1e3, "ms", "-"))
    store.close()
    return rows


def run_processes(store_dir: Path) -> list[tuple[str, float, str, str]]:
    env = {
        **os.environ,
        "FLUX_HOME": str(store_dir),
        "FLUX_LOCAL_DATABASE": str(store_dir / "p.db"),
    }
    code = "import time; t=time.perf_counter(); import flux; print(time.perf_counter()-t)"
    samples = []
    for _ in range(REPEATS + 2):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        samples.append(float(out.stdout.strip()))
    rows = [("import flux", statistics.median(samples) * 1e3, "ms", "<= 150")]

    hello = Path(__file__).parent.parent / "examples" / "hello_world.py"
    samples = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(hello)], check=True, capture_output=True, env=env)
        samples.append(time.perf_counter() - t0)
    rows.append(("hello-world process (cold)", statistics.median(samples) * 1e3, "ms", "<= 400"))

    # The bench's own root first, then any PYTHONPATH given (which may select the code measured).
    bench_root, pythonpath = str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")
    rss = (
        "import resource, bench.sdk as b;"
        "b.fanout1000.run(1000); b.seq1000.run(1000);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", rss],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": os.pathsep.join(filter(None, [bench_root, pythonpath]))},
        check=True,
    )
    rows.append(("peak RSS (fanout1000 + seq1000)", int(out.stdout.strip()) / 1024, "MiB", "-"))
    return rows


def main() -> list[tuple[str, float, str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        return run(Path(tmp)) + run_processes(Path(tmp))
