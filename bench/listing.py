"""Listing a million executions: ``GET /executions`` and friends through a real server process.

The executions are seeded by bulk insert into a migrated database, not through the API (SQLite:
one transaction of ``executemany``; PostgreSQL: ``COPY``), so the triggers keep the counts
as they would have. Then each request is timed from a client on loopback, ``REQUESTS`` times
after a warm-up, and the p50 and p95 are reported.

    python -m bench listing
    FLUX_BENCH_DB=sqlite FLUX_BENCH_LISTING_ROWS=100000 python -m bench listing

Set FLUX_BENCH_DB=sqlite|postgres|both (default both when PostgreSQL answers).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.server import Cluster, _drop_pg, _pct, _pg_database

ROWS = int(os.environ.get("FLUX_BENCH_LISTING_ROWS", "1000000"))
REQUESTS = int(os.environ.get("FLUX_BENCH_LISTING_REQUESTS", "20"))
WORKFLOWS = 20
WORKERS = 16
WITH_EVENTS = 1000
"""The newest executions get a short history each (the events page reads one)."""
SCHEDULED_EVERY = 1000
"""Every this many executions one was started by a schedule's tick."""
STATES = ["COMPLETED"] * 80 + ["FAILED"] * 8 + ["SCHEDULED"] * 4
STATES += ["CANCELLED"] * 3 + ["PAUSED"] * 3 + ["RUNNING"] * 2
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=2.5)  # a million executions over about a month

Row = tuple[Any, ...]
Figure = tuple[str, float, str, str]


def _executions(
    n: int, workflow_ids: list[str], start: int = 0, states: list[str] = STATES
) -> Iterator[Row]:
    """(id, workflow_id, workflow_name, state, input view, worker, created, updated) of the
    executions numbered ``start`` to ``start + n``, their states drawn from ``states``."""
    rng = random.Random(7 + start)
    for i in range(start, start + n):
        state = rng.choice(states)
        created = T0 + STEP * i
        worker = None if state == "SCHEDULED" else f"bench-{rng.randrange(WORKERS)}"
        w = rng.randrange(WORKFLOWS)
        yield (
            f"{i:032x}",
            workflow_ids[w],
            f"flow_{w}",
            state,
            {"order": i},
            worker,
            created,
            created + timedelta(seconds=rng.randrange(1, 600)),
        )


_COLUMNS = (
    "id, workflow_id, workflow_name, workflow_version, state, input, input_view, output, "
    "output_view, worker_name, generation, created_at, updated_at"
)


def _seed_sqlite(
    path: Path,
    workflow_ids: list[str],
    n: int,
    start: int = 0,
    events: bool = True,
    states: list[str] = STATES,
) -> None:
    """Insert executions ``start`` to ``start + n`` in ``states`` (and, with ``events``, a
    short history for the newest of them)."""
    conn = sqlite3.connect(path)
    try:
        with conn:  # one transaction
            conn.executemany(
                f"INSERT INTO executions ({_COLUMNS}) VALUES (?,?,?,1,?,?,?,?,?,?,1,?,?)",
                (
                    (
                        i,
                        w,
                        name,
                        state,
                        json.dumps(v).encode(),
                        json.dumps(v),
                        b'"ok"',
                        '"ok"',
                        worker,
                        created.timestamp(),
                        updated.timestamp(),
                    )
                    for i, w, name, state, v, worker, created, updated in _executions(
                        n, workflow_ids, start, states
                    )
                ),
            )
            conn.executemany(
                "INSERT INTO events (id, execution_id, type, source_id, name, scope, time) "
                "VALUES (?,?,?,?,?,'',?)",
                ((e[0], e[1], e[2], e[3], e[4], e[5].timestamp()) for e in _events(n, events)),
            )
    finally:
        conn.close()


def _seed_postgres(
    url: str,
    workflow_ids: list[str],
    n: int,
    start: int = 0,
    events: bool = True,
    states: list[str] = STATES,
) -> None:
    """As :func:`_seed_sqlite`, by ``COPY``."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor() as cur:
            with cur.copy(f"COPY executions ({_COLUMNS}) FROM STDIN") as copy:
                for i, w, name, state, v, worker, created, updated in _executions(
                    n, workflow_ids, start, states
                ):
                    text = json.dumps(v)
                    copy.write_row(
                        (
                            i,
                            w,
                            name,
                            1,
                            state,
                            text.encode(),
                            text,
                            b'"ok"',
                            '"ok"',
                            worker,
                            1,
                            created,
                            updated,
                        )
                    )
            with cur.copy(
                "COPY events (id, execution_id, type, source_id, name, time) FROM STDIN"
            ) as copy:
                for event in _events(n, events):
                    copy.write_row(event)
        conn.execute("VACUUM ANALYZE")  # as autovacuum does after a bulk load


def _events(n: int, wanted: bool = True) -> Iterator[Row]:
    if not wanted:
        return
    types = ["WORKFLOW_STARTED", "TASK_STARTED", "TASK_COMPLETED", "TASK_STARTED"]
    for i in range(max(0, n - WITH_EVENTS), n):
        for k, kind in enumerate(types):
            yield (f"e{i:x}-{k}", f"{i:032x}", kind, f"t:{k}", "step", T0 + STEP * i)


async def _schedule(url: str, n: int) -> None:
    """A schedule whose ticks started every ``SCHEDULED_EVERY``-th execution."""
    import sqlalchemy as sa
    from flux_server.db import Database
    from flux_server.db.tables import schedule_runs, schedules

    db = Database(url)
    try:
        async with db.write() as tx:
            await tx.conn.execute(
                sa.insert(schedules).values(
                    id="bench-schedule",
                    name="bench-nightly",
                    workflow_name="flow_0",
                    schedule={"type": "interval", "interval_seconds": 3600},
                    state="ACTIVE",
                    created_at=T0,
                    updated_at=T0,
                )
            )
            await tx.conn.execute(
                sa.insert(schedule_runs),
                [
                    {
                        "id": f"run-{i}",
                        "schedule_id": "bench-schedule",
                        "execution_id": f"{i:032x}",
                        "scheduled_for": T0 + STEP * i,
                        "fired_at": T0 + STEP * i,
                        "state": "COMPLETED",
                    }
                    for i in range(0, n, SCHEDULED_EVERY)
                ],
            )
    finally:
        await db.dispose()


async def _migrate(url: str) -> list[str]:
    """The schema, and one workflow version per workflow name; their ids."""
    import sqlalchemy as sa
    from flux_server.db import Database, upgrade
    from flux_server.db.tables import workflows

    db = Database(url)
    try:
        await upgrade(db)
        ids = [f"wf-{w}" for w in range(WORKFLOWS)]
        async with db.write() as tx:
            await tx.conn.execute(
                sa.insert(workflows),
                [
                    {
                        "id": ids[w],
                        "name": f"flow_{w}",
                        "version": 1,
                        "source": "",
                        "source_hash": "",
                        "options": {},
                        "created_at": T0,
                    }
                    for w in range(WORKFLOWS)
                ],
            )
        return ids
    finally:
        await db.dispose()


def _time(client: httpx.Client, path: str, params: dict[str, Any]) -> tuple[float, float]:
    for _ in range(3):
        client.get(path, params=params).raise_for_status()
    samples = []
    for _ in range(REQUESTS):
        t0 = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples), _pct(samples, 95)


def _measure(url: str, label: str) -> list[Figure]:
    newest = f"{ROWS - 1:032x}"
    with httpx.Client(base_url=url, timeout=120) as client:
        deep = client.get("/executions", params={"state": "COMPLETED", "limit": 500}).json()
        cases: list[tuple[str, str, dict[str, Any], str]] = [
            ("state=FAILED", "/executions", {"state": "FAILED"}, "<= 50"),
            ("state=COMPLETED", "/executions", {"state": "COMPLETED"}, "<= 50"),
            ("state=RUNNING,PAUSED", "/executions", {"state": "RUNNING,PAUSED"}, "<= 50"),
            ("no filter", "/executions", {}, "-"),
            ("workflow+state", "/executions", {"workflow": "flow_3", "state": "FAILED"}, "-"),
            (
                "next page (cursor)",
                "/executions",
                {"state": "COMPLETED", "cursor": deep["next_cursor"]},
                "-",
            ),
            ("worker (rows counted)", "/executions", {"worker": "bench-5"}, "-"),
            (
                "created in a day (rows counted)",
                "/executions",
                {
                    "created_after": (T0 + timedelta(days=10)).isoformat(),
                    "created_before": (T0 + timedelta(days=11)).isoformat(),
                },
                "-",
            ),
            ("schedule (rows counted)", "/executions", {"schedule": "bench-nightly"}, "-"),
            (
                "updated in the last day, state=RUNNING (rows counted)",
                "/executions",
                {"state": "RUNNING", "updated_after": (T0 + STEP * (ROWS - 34_560)).isoformat()},
                "-",
            ),
            ("events page", f"/executions/{newest}/events", {}, "-"),
        ]
        figures: list[Figure] = []
        for name, path, params, target in cases:
            p50, p95 = _time(client, path, params)
            figures.append((f"{label} {name} p50", p50, "ms", target))
            figures.append((f"{label} {name} p95", p95, "ms", "-"))
    return figures


def _run(label: str, home: Path, url: str, seed: Any) -> list[Figure]:
    workflow_ids = asyncio.run(_migrate(url))
    t0 = time.perf_counter()
    seed(workflow_ids, ROWS)
    asyncio.run(_schedule(url, ROWS))
    seeded = time.perf_counter() - t0
    print(f"{label}: seeded {ROWS:,} executions in {seeded:.1f} s", file=sys.stderr)
    cluster = Cluster(home, url)
    try:
        cluster.start(0)
        return [
            (f"{label} seeding {ROWS:,} executions", seeded, "s", "-"),
            *_measure(cluster.url, label),
        ]
    finally:
        cluster.stop()


def main() -> list[Figure]:
    which = os.environ.get("FLUX_BENCH_DB", "both")
    figures: list[Figure] = []
    if which in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "flux.db"
            figures += _run(
                "sqlite",
                Path(tmp),
                f"sqlite:///{path}",
                lambda ids, n: _seed_sqlite(path, ids, n),
            )
    if which in ("postgres", "both"):
        created = _pg_database()
        if created is None:
            print("PostgreSQL not reachable: skipping the postgres figures", file=sys.stderr)
        else:
            url, name = created
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    figures += _run(
                        "postgres", Path(tmp), url, lambda ids, n: _seed_postgres(url, ids, n)
                    )
            finally:
                _drop_pg(name)
    return figures
