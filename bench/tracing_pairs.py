"""What traces cost: the server's and the worker's CPU per execution with tracing off, on
(exporting over OTLP/HTTP to a receiver on loopback), and on with one trace in ten sampled.

    python -m bench.tracing_pairs [ROUNDS] [RUNS]     # default: 5 rounds of 1,000
    python -m bench.tracing_pairs spans               # the SDK's own cost per span

Each round starts three clusters at once, one per variant, each a fresh server (SQLite), one
worker (capacity 64) and a home of its own, and warms them up with 50 executions. Then, per
workload, RUNS executions run on the three clusters at the same time (16 concurrent sync runs
each, from this process), so that every variant meets the machine in the same state (on this
shared VM, runs one after another differed by more than the cost measured), and the
server's and the worker's CPU (psutil) of each cluster is read. Workloads: ``bench_one`` (one
task) and ``bench_tasks`` with 10 tasks. On means ``OTEL_EXPORTER_OTLP_ENDPOINT`` set and
nothing else (spans exported in batches of up to 512, at least every 5 s: the SDK's
defaults); sampled adds ``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` and
``OTEL_TRACES_SAMPLER_ARG=0.1``. After each workload every cluster idles the same 5.5 s
before its CPU is read, so that the last batch is exported (and counted) first. A variant's
change is the median of its rounds' changes from the same round's off. The receivers run in
this process: their CPU, like the load's, is not counted; they count the spans they get, to
check that every execution was traced.
"""

from __future__ import annotations

import asyncio
import contextlib
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
SETTLE = 5.5
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
            protocol_version = "HTTP/1.1"  # keep-alive, as a collector's receiver does

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


VARIANTS = {
    "off": {},
    "on": {},
    "sampled": {
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    },
}
Figures = dict[str, dict[str, tuple[float, float]]]
"""Per variant, per workload: server and worker CPU microseconds per execution."""


async def _load(client: AsyncFluxClient, name: str, tasks: int, runs: int) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with gate:
            status = await client.run(name, tasks, mode="sync")
            if status.state != "COMPLETED":
                raise RuntimeError(f"{name} ended {status.state}")

    await asyncio.gather(*(one() for _ in range(runs)))


async def _measure(clusters: dict[str, Cluster], runs: int) -> Figures:
    """Every workload on every variant's cluster at the same time, so that all of them run
    on the machine as it is at that moment."""
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            variant: await stack.enter_async_context(AsyncFluxClient(cluster.url, timeout=120))
            for variant, cluster in clusters.items()
        }
        for client in clients.values():
            await client.register_workflows(ROOT / "bench" / "workflows.py")
        await asyncio.gather(*(_load(c, "bench_one", 1, WARMUP) for c in clients.values()))
        figures: Figures = {variant: {} for variant in clusters}
        for name, tasks in WORKLOADS:
            meters = {variant: _CpuMeter(cluster) for variant, cluster in clusters.items()}
            await asyncio.gather(*(_load(c, name, tasks, runs) for c in clients.values()))
            await asyncio.sleep(SETTLE)
            for variant, meter in meters.items():
                server, worker = meter.spent()
                figures[variant][name] = (server / runs * 1e6, worker / runs * 1e6)
    return figures


def _round(receivers: dict[str, Receiver], runs: int) -> Figures:
    with contextlib.ExitStack() as stack:
        clusters: dict[str, Cluster] = {}
        for variant, extra in VARIANTS.items():
            home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            cluster = Cluster(home, f"sqlite:///{home}/flux.db")
            cluster.env = {k: v for k, v in cluster.env.items() if not k.startswith("OTEL_")}
            if variant in receivers:
                cluster.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receivers[variant].url
                cluster.env.update(extra)
            stack.callback(cluster.stop)
            cluster.start(1)
            clusters[variant] = cluster
        return asyncio.run(_measure(clusters, runs))


def main(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv else 5
    runs = int(argv[1]) if len(argv) > 1 else 1000
    receivers = {variant: Receiver() for variant in VARIANTS if variant != "off"}
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    expected = (2 + 1) * WARMUP + sum((2 + t) * runs for _, t in WORKLOADS)
    for turn in range(rounds):
        before = receivers["on"].spans
        figures = _round(receivers, runs)
        if receivers["on"].spans - before < expected:
            raise RuntimeError(f"{receivers['on'].spans - before} spans, expected {expected}")
        for variant, by_workload in figures.items():
            for name, cpu in by_workload.items():
                samples.setdefault((variant, name), []).append(cpu)
            shown = ", ".join(f"{n} {s + w:,.0f} us" for n, (s, w) in by_workload.items())
            print(f"round {turn + 1} {variant:>7}: {shown}", flush=True)
    print(f"\n{rounds} rounds of {runs} executions per workload: medians of CPU per execution")
    print("and of each round's change from that round's off")
    print("| workload | variant | server | worker | server + worker | change |")
    print("|---|---|---:|---:|---:|---:|")
    for name, tasks in WORKLOADS:
        offs = samples[("off", name)]
        for variant in VARIANTS:
            values = samples[(variant, name)]
            server, worker, both = _medians(values)
            changes = [
                (s + w) / (so + wo) - 1 for (s, w), (so, wo) in zip(values, offs, strict=True)
            ]
            change = "" if variant == "off" else f"{statistics.median(changes) * 100:+.1f} %"
            print(
                f"| {name} ({tasks} task{'s' if tasks > 1 else ''}) | {variant} "
                f"| {server:,.0f} us | {worker:,.0f} us | {both:,.0f} us | {change} |"
            )


def span_floor(n: int = 20_000) -> tuple[float, float]:
    """What the OpenTelemetry SDK itself costs per span, in this process, with no Flux code:
    microseconds to start and end a span of three attributes (a task's), and to encode it
    for OTLP (in batches of 512, as the batch processor exports them)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

    ended: list[ReadableSpan] = []

    class Keep(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            ended.append(span)

    provider = TracerProvider()
    provider.add_span_processor(Keep())
    tracer = provider.get_tracer("bench")
    attributes = {"flux.task.id": "noop:" + "0" * 64 + ":0", "flux.task.attempt": 1}
    started = time.process_time()
    for _ in range(n):
        span = tracer.start_span("flux.task.run noop", attributes=attributes, start_time=1)
        span.set_attribute("flux.task.outcome", "completed")
        span.end(end_time=2)
    made = time.process_time() - started
    started = time.process_time()
    for i in range(0, n, 512):
        encode_spans(ended[i : i + 512]).SerializeToString()
    encoded = time.process_time() - started
    return made / n * 1e6, encoded / n * 1e6


def _medians(values: list[tuple[float, float]]) -> tuple[float, float, float]:
    server = statistics.median(s for s, _ in values)
    worker = statistics.median(w for _, w in values)
    both = statistics.median(s + w for s, w in values)
    return server, worker, both


if __name__ == "__main__":
    started = time.monotonic()
    if sys.argv[1:] == ["spans"]:
        made, encoded = zip(*(span_floor() for _ in range(5)), strict=True)
        print(
            f"SDK per span: {statistics.median(made):.1f} us to start and end, "
            f"{statistics.median(encoded):.1f} us to encode for OTLP (medians of 5)"
        )
    else:
        main(sys.argv[1:])
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
