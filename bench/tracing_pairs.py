"""What traces cost: the server's and the worker's CPU per execution with tracing on
(exporting over OTLP/HTTP to a receiver on loopback) and off, in interleaved runs.

    python -m bench.tracing_pairs [PAIRS] [RUNS]

Each run starts a fresh server (SQLite), one worker (capacity 64) and a home of its own, warms
up with 50 executions, then runs RUNS executions of each workload through 16 concurrent sync
runs from this process, and reads the server's and the worker's CPU (psutil) over each
workload. Workloads: ``bench_one`` (one task) and ``bench_tasks`` with 10 tasks. Tracing on
means ``OTEL_EXPORTER_OTLP_ENDPOINT`` set (nothing else), with a batch delay of 200 ms; both
variants then idle the same second before the CPU is read, so the on variant's last batch is
exported (and counted) first. Every pair runs both variants, the order reversed every other
pair. The receiver runs in this process: its CPU, like the load's, is not counted; it counts
the spans it gets, to check every execution was traced.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from flux.client import AsyncFluxClient

from bench.server import ROOT, Cluster, _CpuMeter

WORKLOADS = (("bench_one", 1), ("bench_tasks", 10))
CONCURRENCY = 16
WARMUP = 50
SETTLE = 1.0
"""Seconds both variants idle after a workload, before its CPU is read."""


class Receiver:
    """An OTLP/HTTP trace receiver on loopback that counts the spans it is sent."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        self.spans = 0
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                found = sum(
                    len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
                )
                with lock:
                    receiver.spans += found
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


async def _workload(cluster: Cluster, name: str, tasks: int, runs: int) -> tuple[float, float]:
    """Server and worker CPU microseconds per execution of ``runs`` sync runs."""
    meter = _CpuMeter(cluster)
    gate = asyncio.Semaphore(CONCURRENCY)
    async with AsyncFluxClient(cluster.url, timeout=120) as client:

        async def one() -> None:
            async with gate:
                status = await client.run(name, tasks, mode="sync")
                if status.state != "COMPLETED":
                    raise RuntimeError(f"{name} ended {status.state}")

        meter.restart()
        await asyncio.gather(*(one() for _ in range(runs)))
        await asyncio.sleep(SETTLE)
        server, worker = meter.spent()
    return server / runs * 1e6, worker / runs * 1e6


async def _run(cluster: Cluster, runs: int) -> dict[str, tuple[float, float]]:
    async with AsyncFluxClient(cluster.url, timeout=120) as client:
        await client.register_workflows(ROOT / "bench" / "workflows.py")
        await asyncio.gather(*(client.run("bench_one", 1, mode="sync") for _ in range(WARMUP)))
    return {name: await _workload(cluster, name, tasks, runs) for name, tasks in WORKLOADS}


def _one(traced: bool, receiver: Receiver, runs: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp), f"sqlite:///{tmp}/flux.db")
        cluster.env = {k: v for k, v in cluster.env.items() if not k.startswith("OTEL_")}
        if traced:
            cluster.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
            cluster.env["OTEL_BSP_SCHEDULE_DELAY"] = "200"
        try:
            cluster.start(1)
            return asyncio.run(_run(cluster, runs))
        finally:
            cluster.stop()


def main(argv: list[str]) -> None:
    pairs = int(argv[0]) if argv else 5
    runs = int(argv[1]) if len(argv) > 1 else 500
    receiver = Receiver()
    samples: dict[tuple[bool, str], list[tuple[float, float]]] = {}
    for pair in range(pairs):
        order = (False, True) if pair % 2 == 0 else (True, False)
        for traced in order:
            before = receiver.spans
            figures = _one(traced, receiver, runs)
            spans = receiver.spans - before
            for name, cpu in figures.items():
                samples.setdefault((traced, name), []).append(cpu)
            shown = ", ".join(f"{n} {s + w:,.0f} us" for n, (s, w) in figures.items())
            print(f"pair {pair + 1} tracing {'on ' if traced else 'off'}: {shown}; {spans} spans")
            expected = (2 + 1) * WARMUP + sum((2 + t) * runs for _, t in WORKLOADS)
            if traced and spans < expected:
                raise RuntimeError(f"the receiver got {spans} spans, expected {expected}")
    print(f"\n{pairs} pairs of {runs} executions per workload; medians of server+worker CPU")
    print("| workload | off: server / worker / both | on: server / worker / both | on - off |")
    print("|---|---:|---:|---:|")
    for name, tasks in WORKLOADS:
        off, on = (_medians(samples[(traced, name)]) for traced in (False, True))
        change = (on[2] - off[2]) / off[2] * 100
        print(
            f"| {name} ({tasks} task{'s' if tasks > 1 else ''}) "
            f"| {off[0]:,.0f} / {off[1]:,.0f} / {off[2]:,.0f} us "
            f"| {on[0]:,.0f} / {on[1]:,.0f} / {on[2]:,.0f} us | {change:+.1f} % |"
        )


def _medians(values: list[tuple[float, float]]) -> tuple[float, float, float]:
    server = statistics.median(s for s, _ in values)
    worker = statistics.median(w for _, w in values)
    both = statistics.median(s + w for s, w in values)
    return server, worker, both


if __name__ == "__main__":
    started = time.monotonic()
    main(sys.argv[1:])
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
