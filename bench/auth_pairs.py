"""What authentication costs: CPU and latency per request with ``server.auth`` on and off,
side by side, in interleaved batches.

    python -m bench.auth_pairs [PAIRS] [REQUESTS]
    FLUX_BENCH_DB=postgres python -m bench.auth_pairs 7 3000

Two clusters run for the whole session, each a server (SQLite, or PostgreSQL with
``FLUX_BENCH_DB=postgres``, a database each) and one worker (capacity 64) with a home of its
own: **off** (``server.auth = off``, as on loopback by default) and **on** (``server.auth =
on``; every request carries the admin key the server wrote, and the worker its session
token). Then, PAIRS times, each cluster in turn takes two batches from wrk, the order
reversed every other pair:

- ``read``: REQUESTS GETs of ``/executions/{id}`` (a completed execution) over one
  keep-alive connection: the cheapest authenticated route, where the gate's share of a
  request is the largest, one request at a time, so that p50 is a request's own latency;
- ``run``: REQUESTS / 5 sync runs of ``bench_one`` (one task) over 16 connections: a whole
  execution under load, the worker's own authenticated calls (claim, checkpoints) included.

Per batch: the server's CPU (and the worker's, for ``run``) per request from psutil, and wrk's
p50 latency. Reported: the medians of each variant, the median over pairs of each pair's
on/off CPU ratio, and the median of the pairs' p50 differences. Targets (issue 16): on costs
at most 5 % of CPU per request and 0.2 ms p50.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from flux.client import AsyncFluxClient

from bench.server import ROOT, Cluster, _CpuMeter, _drop_pg, cluster_database
from bench.wrk import send_many

CONCURRENCY = {"read": 1, "run": 16}
SETTLE = 0.5
"""Seconds every batch idles after its requests, before its CPU is read."""


@contextlib.contextmanager
def _clusters(database: str, home: Path) -> Iterator[dict[str, Cluster]]:
    """The off and on clusters (and their databases on PostgreSQL), stopped at the end."""
    started: dict[str, Cluster] = {}
    databases: list[str] = []
    try:
        for name in ("off", "on"):
            folder = home / name
            folder.mkdir()
            cluster = Cluster(folder, cluster_database(folder, database, databases))
            cluster.env["FLUX_SERVER__AUTH"] = name
            started[name] = cluster
            cluster.start(0)
            if name == "on":
                key = (folder / "admin-key").read_text().strip()
                cluster.headers = {"Authorization": f"Bearer {key}"}
            cluster.add_worker("bench-0")
        yield started
    finally:
        for cluster in started.values():
            cluster.stop()
        for db_name in databases:
            _drop_pg(db_name)


async def _prepare(cluster: Cluster) -> str:
    """Register the bench's workflows, warm the cluster up; a completed execution's id."""
    key = cluster.headers.get("Authorization", "").removeprefix("Bearer ") or None
    async with AsyncFluxClient(cluster.url, timeout=60, api_key=key) as client:
        await client.register_workflows(ROOT / "bench" / "workflows.py")
        done = await asyncio.gather(*(client.run("bench_one", 1, mode="sync") for _ in range(50)))
    return done[0].execution_id


async def _batch(
    cluster: Cluster, kind: str, execution_id: str, requests: int
) -> tuple[float, float]:
    """CPU microseconds per request (server + worker) and wrk's p50 in milliseconds."""
    meter = _CpuMeter(cluster)
    if kind == "read":
        target, body, n = f"{cluster.url}/executions/{execution_id}", None, requests
    else:
        target, body, n = f"{cluster.url}/workflows/bench_one/run/sync", "1", requests // 5
    meter.restart()
    load = await send_many(target, body, n, CONCURRENCY[kind], headers=cluster.headers)
    load.raise_for_failures()
    await asyncio.sleep(SETTLE)
    server, worker = meter.spent()
    return (server + worker) / n * 1e6, load.latency_ms[50]


async def _session(
    clusters: dict[str, Cluster], pairs: int, requests: int
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    ids = {name: await _prepare(cluster) for name, cluster in clusters.items()}
    names = list(clusters)
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for pair in range(pairs):
        order = names if pair % 2 == 0 else names[::-1]
        shown = []
        for kind in ("read", "run"):
            for name in order:
                sample = await _batch(clusters[name], kind, ids[name], requests)
                samples.setdefault((name, kind), []).append(sample)
                shown.append(f"{kind} {name} {sample[0]:,.0f} us {sample[1]:.2f} ms")
        print(f"pair {pair + 1}: {', '.join(shown)}", flush=True)
    return samples


def main(argv: list[str]) -> None:
    pairs = int(argv[0]) if argv else 7
    requests = int(argv[1]) if len(argv) > 1 else 3000
    database = os.environ.get("FLUX_BENCH_DB", "sqlite")
    with tempfile.TemporaryDirectory() as tmp, _clusters(database, Path(tmp)) as clusters:
        samples = asyncio.run(_session(clusters, pairs, requests))
    print(
        f"\n{database}, {pairs} pairs; batches of {requests} reads (one connection) and "
        f"{requests // 5} sync runs (16 connections); medians"
    )
    print("| batch | CPU per request, off | on | on / off (of pair ratios) "
          "| p50 off | p50 on | p50 on - off (of pairs) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in ("read", "run"):
        off, on = samples[("off", kind)], samples[("on", kind)]
        ratio = statistics.median(b[0] / a[0] for a, b in zip(off, on, strict=True))
        delta = statistics.median(b[1] - a[1] for a, b in zip(off, on, strict=True))
        print(
            f"| {kind} | {statistics.median(c for c, _ in off):,.0f} us "
            f"| {statistics.median(c for c, _ in on):,.0f} us | {(ratio - 1) * 100:+.1f} % "
            f"| {statistics.median(p for _, p in off):.2f} ms "
            f"| {statistics.median(p for _, p in on):.2f} ms | {delta:+.3f} ms |"
        )


if __name__ == "__main__":
    started = time.monotonic()
    main(sys.argv[1:])
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
