"""What traces cost: the server's and the worker's CPU per execution with tracing off, on
(exporting over OTLP/HTTP to a receiver on loopback), and on with one trace in ten sampled.

    python -m bench.tracing_pairs [ROUNDS] [RUNS]     # default: 5 rounds of 1,000
    python -m bench.tracing_pairs spans               # a span's cost: the SDK's and Flux's
    FLUX_BENCH_BEFORE=<clone>/packages python -m bench.tracing_pairs before on [ROUNDS] [RUNS]

Each round runs two pairs, off against on and off against sampled. A pair starts two
clusters at once, each a fresh server (SQLite), one worker (capacity 64) and a home of its
own, warms them up with 50 executions and waits until their first spans are exported. Then,
per workload, RUNS executions run on both clusters at the same time (16 concurrent sync runs
each, from this process), so that both variants meet the machine in the same state (on this
shared VM, runs one after another differed by more than the cost measured), and the
server's and the worker's CPU (psutil) of each cluster is read. Workloads: ``bench_one`` (one
task) and ``bench_tasks`` with 10 tasks. On means ``OTEL_EXPORTER_OTLP_ENDPOINT`` set and
nothing else (spans exported in batches of up to 512, at least every 5 s: the SDK's
defaults); sampled adds ``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` and
``OTEL_TRACES_SAMPLER_ARG=0.1``. After each workload every cluster idles the same 5.5 s
before its CPU is read, so that the last batch is exported (and counted) first. A variant's
change is the median of its pairs' changes from the off of the same pair. The receivers run
in this process: their CPU, like the load's, is not counted; they count the spans they get,
to check that every execution was traced.

``before`` compares two versions of the code: each round starts three clusters at once,
off, the variant with another checkout's packages (``FLUX_BENCH_BEFORE``) and the variant
with this one's, the order reversed every other round; each side's change is from the off
of its round.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
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
        await asyncio.sleep(SETTLE)  # the first export (its imports, its connection) too
        figures: Figures = {variant: {} for variant in clusters}
        for name, tasks in WORKLOADS:
            meters = {variant: _CpuMeter(cluster) for variant, cluster in clusters.items()}
            await asyncio.gather(*(_load(c, name, tasks, runs) for c in clients.values()))
            await asyncio.sleep(SETTLE)
            for variant, meter in meters.items():
                server, worker = meter.spent()
                figures[variant][name] = (server / runs * 1e6, worker / runs * 1e6)
    return figures


def _round(
    receivers: dict[str, Receiver],
    runs: int,
    variants: tuple[str, ...],
    packages: dict[str, Path] | None = None,
) -> Figures:
    """``variants`` measured at once, each a cluster of its own; a cluster named in
    ``packages`` runs the code there (a checkout's ``packages``), its name's part before a
    space being its variant."""
    with contextlib.ExitStack() as stack:
        clusters: dict[str, Cluster] = {}
        for name in variants:
            variant = name.split(" ")[0]
            home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            cluster = Cluster(home, f"sqlite:///{home}/flux.db")
            cluster.env = {k: v for k, v in cluster.env.items() if not k.startswith("OTEL_")}
            if variant in receivers:
                cluster.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receivers[variant].url
                cluster.env.update(VARIANTS[variant])
            if packages and name in packages:
                cluster.env["PYTHONPATH"] = os.pathsep.join(
                    str(packages[name] / p) for p in ("flux-sdk", "flux-server", "flux-worker")
                )
            stack.callback(cluster.stop)
            cluster.start(1)
            clusters[name] = cluster
        return asyncio.run(_measure(clusters, runs))


def before(argv: list[str]) -> None:
    """This checkout's cost of a variant against another checkout's, in the same rounds."""
    variant = argv[0] if argv else "on"
    rounds = int(argv[1]) if len(argv) > 1 else 5
    runs = int(argv[2]) if len(argv) > 2 else 1000
    packages = {f"{variant} before": Path(os.environ["FLUX_BENCH_BEFORE"])}
    receivers = {variant: Receiver()}
    sides = (f"{variant} before", f"{variant} after")
    changes: dict[tuple[str, str], list[float]] = {}
    for turn in range(rounds):
        order = ("off", *sides) if turn % 2 == 0 else (*reversed(sides), "off")
        figures = _round(receivers, runs, order, packages)
        for name, _ in WORKLOADS:
            off = sum(figures["off"][name])
            for side in sides:
                changes.setdefault((name, side), []).append(sum(figures[side][name]) / off - 1)
            shown = ", ".join(f"{side} {sum(figures[side][name]):,.0f}" for side in order)
            print(f"round {turn + 1} {name}: {shown} us", flush=True)
    print(f"\n{rounds} rounds of {runs} executions per workload: medians of each side's change")
    print("| workload | variant | before | after |")
    print("|---|---|---:|---:|")
    for name, tasks in WORKLOADS:
        before_, after = (statistics.median(changes[(name, side)]) * 100 for side in sides)
        print(
            f"| {name} ({tasks} task{'s' if tasks > 1 else ''}) | {variant} "
            f"| {before_:+.1f} % | {after:+.1f} % |"
        )


def main(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv else 5
    runs = int(argv[1]) if len(argv) > 1 else 1000
    receivers = {variant: Receiver() for variant in VARIANTS if variant != "off"}
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    changes: dict[tuple[str, str], list[float]] = {}
    expected = (2 + 1) * WARMUP + sum((2 + t) * runs for _, t in WORKLOADS)
    for turn in range(rounds):
        for variant in receivers:
            before = receivers["on"].spans
            figures = _round(receivers, runs, ("off", variant))
            if variant == "on" and receivers["on"].spans - before < expected:
                raise RuntimeError(f"{receivers['on'].spans - before} spans, expected {expected}")
            for name, cpu in figures[variant].items():
                samples.setdefault((variant, name), []).append(cpu)
                samples.setdefault(("off", name), []).append(figures["off"][name])
                off = sum(figures["off"][name])
                changes.setdefault((variant, name), []).append(sum(cpu) / off - 1)
            shown = ", ".join(
                f"{n} {sum(figures['off'][n]):,.0f} -> {sum(c):,.0f} us"
                for n, c in figures[variant].items()
            )
            print(f"round {turn + 1} off, {variant:>7}: {shown}", flush=True)
    print(f"\n{rounds} rounds of {runs} executions per workload and pair: medians of CPU per")
    print("execution and of each pair's change from its off")
    print("| workload | variant | server | worker | server + worker | change |")
    print("|---|---|---:|---:|---:|---:|")
    for name, tasks in WORKLOADS:
        for variant in VARIANTS:
            server, worker, both = _medians(samples[(variant, name)])
            change = ""
            if variant != "off":
                change = f"{statistics.median(changes[(variant, name)]) * 100:+.1f} %"
            print(
                f"| {name} ({tasks} task{'s' if tasks > 1 else ''}) | {variant} "
                f"| {server:,.0f} us | {worker:,.0f} us | {both:,.0f} us | {change} |"
            )


def span_floor(n: int = 20_000) -> dict[str, float]:
    """What a span costs, in this process, without the rest of Flux: microseconds to make one
    of a task's shape (three attributes, a parent) and to encode it for OTLP (in batches of
    512, as the batch processor exports them), with the SDK's ``Tracer`` and encoder and
    with Flux's (:mod:`flux.spans`, :mod:`flux.otlp`), side by side. The garbage collector
    is off while they are timed: with Python's default thresholds a collection of the
    spans kept so far falls inside one loop or the other by chance (the server and the
    worker collect far less often, ``flux._gc``)."""
    from flux.otlp import encode
    from flux.spans import SpanMaker
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

    ended: list[ReadableSpan] = []

    class Keep(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            ended.append(span)

    provider = TracerProvider()
    provider.add_span_processor(Keep())
    tracer = provider.get_tracer("bench")
    maker = SpanMaker(provider, "bench")
    segment = maker.start("flux.workflow.run bench", None)
    parent = trace.set_span_in_context(trace.NonRecordingSpan(segment.context))
    task_id = "noop:" + "0" * 64 + ":"
    figures: dict[str, float] = {}
    for name, make in (
        ("SDK", lambda i: tracer.start_span("flux.task.run noop", parent, start_time=1)),
        ("Flux", lambda i: segment.child("flux.task.run noop", start_time=1)),
    ):
        started = time.process_time()
        for i in range(n):
            span = make(i)
            span.set_attributes({"flux.task.id": f"{task_id}{i}", "flux.task.attempt": 1})
            span.set_attributes({"flux.task.outcome": "completed"})
            span.end(end_time=2)
        figures[f"{name} make"] = (time.process_time() - started) / n * 1e6
    spans = ended[n:]
    for name, encoder in (
        ("SDK", lambda batch: encode_spans(batch).SerializePartialToString()),
        ("Flux", encode),
    ):
        started = time.process_time()
        for i in range(0, n, 512):
            encoder(spans[i : i + 512])
        figures[f"{name} encode"] = (time.process_time() - started) / n * 1e6
    return figures


def _medians(values: list[tuple[float, float]]) -> tuple[float, float, float]:
    server = statistics.median(s for s, _ in values)
    worker = statistics.median(w for _, w in values)
    both = statistics.median(s + w for s, w in values)
    return server, worker, both


if __name__ == "__main__":
    started = time.monotonic()
    if sys.argv[1:2] == ["before"]:
        before(sys.argv[2:])
    elif sys.argv[1:] == ["spans"]:
        gc.disable()
        rounds = [span_floor() for _ in range(5)]
        median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        for what in ("make", "encode"):
            sdk, flux = median[f"SDK {what}"], median[f"Flux {what}"]
            print(f"per span, {what}: SDK {sdk:.1f} us, Flux {flux:.1f} us ({sdk / flux:.1f}x)")
        print("(medians of 5)")
    else:
        main(sys.argv[1:])
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
