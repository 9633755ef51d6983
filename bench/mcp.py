"""flux-mcp: what a tool call costs over the REST call it makes, and how soon ``flux start
mcp`` serves.

    python -m bench mcp

A server and one worker on SQLite, and flux-mcp on streamable HTTP as a program, all on
loopback. The benchmark process is the client of both:

- **tool-call overhead**: ``get_execution_status`` and ``list_workflows`` through the MCP SDK's
  client against the REST call each makes (``GET /executions/{id}``, ``GET /workflows``) through
  ``flux.client``, in interleaved blocks of ``FLUX_BENCH_MCP_CALLS`` (default 200) calls, p50
  of each side and their difference; ``execute_workflow_sync`` against ``POST
  /workflows/{name}/run/sync`` the same way, with fewer calls (it starts executions);
- **time to ready**: from starting ``flux start mcp --transport streamable-http`` to the first
  answer of its ``/mcp`` endpoint, bytecode already compiled (one start before the measured
  ones writes it), median of ``FLUX_BENCH_MCP_STARTS`` (default 5), with the CPU the process
  used until then (``exec`` keeps it one process); and a fresh ``flux --help`` beside it,
  which must not pay for the MCP SDK.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from flux.client import AsyncFluxClient

from bench.server import ROOT, Cluster, _free_port, _pct

Figure = tuple[str, float, str, str]
CALLS = int(os.environ.get("FLUX_BENCH_MCP_CALLS", "200"))
STARTS = int(os.environ.get("FLUX_BENCH_MCP_STARTS", "5"))
BLOCKS = 4


def _spawn_mcp(cluster: Cluster, port: int, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "flux_cli", "start", "mcp", "--transport", "streamable-http",
            "--port", str(port), "--server-url", cluster.url, "--log-level", "WARNING"]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=cluster.env, stdout=out, stderr=out)


def _wait_serving(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> float:
    """Seconds until ``/mcp`` answers any HTTP status."""
    start = time.perf_counter()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"flux-mcp exited with {process.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
            return time.perf_counter() - start
        except httpx.TransportError:
            time.sleep(0.005)
    raise RuntimeError("flux-mcp did not start")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def _timed(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _cpu(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _overhead(cluster: Cluster, port: int, pid: int) -> list[Figure]:
    import psutil
    from mcp import Client

    server = psutil.Process(pid)

    figures: list[Figure] = []
    async with (
        AsyncFluxClient(cluster.url) as flux,
        Client(f"http://127.0.0.1:{port}/mcp") as client,
    ):
        done = await flux.run("bench_one", 1, mode="sync")
        eid = done.execution_id

        async def mcp_status() -> None:
            result = await client.call_tool("get_execution_status", {"execution_id": eid})
            assert not result.is_error, result.content

        async def mcp_list() -> None:
            assert not (await client.call_tool("list_workflows", {})).is_error

        async def mcp_run() -> None:
            result = await client.call_tool(
                "execute_workflow_sync", {"workflow_name": "bench_one", "input": 1}
            )
            assert result.structured_content and result.structured_content["state"] == "COMPLETED"

        async def rest_run() -> None:
            assert (await flux.run("bench_one", 1, mode="sync")).state == "COMPLETED"

        pairs = [
            ("get_execution_status", mcp_status, lambda: flux.get_execution(eid), CALLS),
            ("list_workflows", mcp_list, flux.list_workflows, CALLS),
            ("execute_workflow_sync", mcp_run, rest_run, max(CALLS // 4, 10)),
        ]
        for name, via_mcp, via_rest, n in pairs:
            await _timed(via_mcp, 10)  # warm both paths: connections, caches
            await _timed(via_rest, 10)
            mcp_ms: list[float] = []
            rest_ms: list[float] = []
            mcp_cpu = 0.0
            for block in range(BLOCKS):  # interleaved, the order swapped every other block
                for side in ("mcp", "rest") if block % 2 == 0 else ("rest", "mcp"):
                    if side == "rest":
                        rest_ms += await _timed(via_rest, n // BLOCKS)
                        continue
                    before = _cpu(server)
                    mcp_ms += await _timed(via_mcp, n // BLOCKS)
                    mcp_cpu += _cpu(server) - before
            p50_mcp, p50_rest = statistics.median(mcp_ms), statistics.median(rest_ms)
            figures += [
                (f"mcp {name}: tool call p50", p50_mcp, "ms", ""),
                (f"mcp {name}: REST call p50", p50_rest, "ms", ""),
                (f"mcp {name}: tool call p95", _pct(mcp_ms, 95), "ms", ""),
                (f"mcp {name}: overhead over REST, p50", p50_mcp - p50_rest, "ms", "≤ 5 ms"),
                (f"mcp {name}: flux-mcp CPU per call", mcp_cpu / len(mcp_ms) * 1e3, "ms", ""),
            ]
    return figures


def _time_to_ready(cluster: Cluster, home: Path) -> list[Figure]:
    import psutil

    ready, cpu = [], []
    for attempt in range(STARTS + 1):  # the first start compiles bytecode; not counted
        port = _free_port()
        process = _spawn_mcp(cluster, port, home / "mcp-start.log")
        try:
            seconds = _wait_serving(port, process)
            # The CPU it took, `flux` and flux-mcp together (exec keeps the process): what
            # the wall-clock time comes to on an idle machine, and what a busy one inflates.
            spent = _cpu(psutil.Process(process.pid))
        finally:
            _stop(process)
        if attempt:
            ready.append(seconds * 1e3)
            cpu.append(spent * 1e3)
    helps, help_cpu = [], []
    for _ in range(STARTS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "flux_cli", "--help"],
            env=cluster.env,
            capture_output=True,
            check=True,
        )
        helps.append((time.perf_counter() - start) * 1e3)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        help_cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1e3)
    return [
        ("`flux start mcp` to serving /mcp, median", statistics.median(ready), "ms", "≤ 2,000 ms"),
        ("`flux start mcp` CPU until serving, median", statistics.median(cpu), "ms", ""),
        ("`flux --help` (fresh process), median", statistics.median(helps), "ms", ""),
        ("`flux --help` CPU, median", statistics.median(help_cpu), "ms", ""),
    ]


def main() -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        cluster = Cluster(home, f"sqlite:///{home / 'flux.db'}")
        cluster.start(workers=1)
        try:
            asyncio.run(_register(cluster))
            port = _free_port()
            process = _spawn_mcp(cluster, port, home / "mcp.log")
            try:
                _wait_serving(port, process)
                # flux start mcp execs flux-mcp: the pid started is the one that serves.
                figures = asyncio.run(_overhead(cluster, port, process.pid))
            finally:
                _stop(process)
            return figures + _time_to_ready(cluster, home)
        finally:
            cluster.stop()


async def _register(cluster: Cluster) -> None:
    async with AsyncFluxClient(cluster.url) as client:
        await client.register_workflows(ROOT / "bench" / "workflows.py")


if __name__ == "__main__":
    for figure in main():
        print(figure)
