"""Load for the server benchmarks from wrk (https://github.com/wg/wrk, the Debian package
``wrk``; ``make bench`` installs it): ``n`` sync runs of a workflow (or ``n`` GETs of an
execution) over ``concurrency`` keep-alive connections, driven by ``bench/sync_runs.lua``.

wrk is written in C, so on a small machine the load takes little of the CPU the server and
worker being measured need (see docs/decisions.md for how it compares with the Python
generator it replaced).
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flux.protocol import PROTOCOL_VERSION

SCRIPT = Path(__file__).with_name("sync_runs.lua")


@dataclass
class LoadResult:
    n: int
    completed: int = 0
    failures: int = 0
    errors: list[str] = field(default_factory=list)  # the first few failures, for the report
    elapsed: float = 0.0  # wall seconds
    cpu: float = 0.0  # wrk's CPU seconds
    latency_ms: dict[int, float] = field(default_factory=dict)  # percentile: milliseconds

    @property
    def rate(self) -> float:
        return self.completed / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_share(self) -> float:
        """Client CPU as a fraction of one core."""
        return self.cpu / self.elapsed if self.elapsed else 0.0

    def raise_for_failures(self) -> None:
        if self.failures or self.completed < self.n:
            shown = "\n  ".join(self.errors)
            raise RuntimeError(
                f"{self.n - self.completed} of {self.n} runs did not complete:\n  {shown}"
            )


def executable() -> str:
    """wrk's path.

    Raises:
        RuntimeError: wrk is not installed.
    """
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError(
            "the server benchmarks need wrk: `make bench` installs it (the Debian package "
            "wrk; `brew install wrk` on macOS)"
        )
    return found


async def run_many(
    url: str,
    workflow: str,
    input: Any,
    n: int,
    concurrency: int,
    timeout: float = 120,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Run ``workflow`` ``n`` times in sync mode over ``concurrency`` connections."""
    target = f"{url}/workflows/{quote(workflow, safe='')}/run/sync"
    return await send_many(target, json.dumps(input), n, concurrency, timeout, headers)


async def send_many(
    target: str,
    body: str | None,
    n: int,
    concurrency: int,
    timeout: float = 120,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Send ``n`` requests to ``target`` over ``concurrency`` connections: POSTs of ``body``,
    or GETs when it is ``None``; each answer must be a 200 naming state COMPLETED."""
    connections = max(1, min(concurrency, n))
    extra = [part for name, value in (headers or {}).items() for part in ("-H", f"{name}: {value}")]
    # One wrk thread: it keeps thousands of requests a second going, and on a small machine
    # every further thread takes a core from the processes being measured.
    command = [executable(), "-t1", f"-c{connections}", f"-d{timeout:.0f}s",
               f"--timeout={timeout:.0f}s", *extra, "-s", str(SCRIPT), target,
               "--", str(n), body or "", PROTOCOL_VERSION]  # fmt: skip
    # wrk is this process's only child that exits (and is reaped) during the run, so the
    # children's CPU counters move by exactly its CPU.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert process.stdout is not None
    lines: list[str] = []
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        if line == "flux-wrk-finished":
            # The last answer is in; wrk would otherwise sleep out its -d duration.
            process.send_signal(signal.SIGINT)
        else:
            lines.append(line)
    await process.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = LoadResult(n)
    result.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    _read(lines, result)
    if process.returncode != 0 and not result.errors:
        result.errors.append(f"wrk exited with {process.returncode}: {lines[-5:]}")
    return result


def _read(lines: list[str], result: LoadResult) -> None:
    for line in lines:
        if line.startswith("flux-wrk-failure "):
            result.errors.append(line.removeprefix("flux-wrk-failure "))
        elif line.startswith("flux-wrk "):
            fields = dict(item.split("=", 1) for item in line.split()[1:])
            numbers = {key: int(value) for key, value in fields.items()}
            result.completed = numbers["completed"]
            errors = sum(numbers[key] for key in ("connect", "read", "write", "timeout"))
            result.failures = numbers["failed"] + errors
            if errors:
                result.errors.append(
                    "socket errors: " + ", ".join(f"{k} {numbers[k]}" for k in
                                                   ("connect", "read", "write", "timeout"))
                )  # fmt: skip
            result.elapsed = numbers["duration_us"] / 1e6
            result.latency_ms = {p: numbers[f"p{p}_us"] / 1e3 for p in (50, 95, 99)}
