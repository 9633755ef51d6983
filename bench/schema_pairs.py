"""What the listing schema costs each execution on SQLite: the server's CPU per run with the
execution-count triggers and the listing indexes in place, and with each taken away.

    python -m bench.schema_pairs [ROUNDS] [RUNS]     # default: 4 rounds of 3,000 runs
    python -m bench.schema_pairs writes [ROUNDS] [N] # SQLite alone; default 8 rounds of 5,000

One cluster (a server on SQLite and one worker, capacity 64) runs for the whole session and
is warmed up with 300 runs. Its schema is then changed while it runs, between batches, from
this process (SQLite's connections see a changed schema and prepare their statements again),
so every variant meets the same server, the same file and the machine in nearly the same
moment: on a shared VM, runs minutes apart differ by more than what is measured. Each round
runs one batch of RUNS one-task sync runs (``bench_one``, 16 connections from wrk) per
variant, in an order reversed every other round, and reads the server's CPU (psutil).

- **as migrated**: the schema at the migration head.
- **no count triggers**: without the triggers that keep ``execution_counts``.
- **no listing indexes**: without ``ix_executions_workflow_name_state_created_at`` and
  ``ix_executions_worker_name_state_created_at``.
- **0004 triggers**: the count triggers as revision 0004 made them (an insert-if-missing and
  an update to add, where revision 0011 makes one upsert).
- **0012 indexes**: the indexes of executions by worker and by offer as they were before
  revision 0013 (a full ``(worker_name, state)`` index beside the listing one, and every row
  in the ``(offered_to, state)`` index, where revision 0013 keeps offered ones only).

Reported: each variant's median CPU per run, and the median over rounds of each round's
ratio of "as migrated" to that variant.

``writes`` measures the same variants without a server, in this process: a migrated SQLite
file per variant, then, per round and variant, the writes of N executions' lives in batches
of 50 (insert, offer, claim, running, completed; a transaction per step, as the server's
writer groups them) and the CPU they took (``time.process_time``). No HTTP, no event loop,
no other thread: what SQLite itself spends on the schema, with far less noise.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from flux.client import AsyncFluxClient

from bench.server import COUNT_TRIGGERS, LISTING_INDEXES, ROOT, Cluster
from bench.wrk import run_many

BY_WORKER, OFFERED = "ix_executions_worker_name_state", "ix_executions_offered_to_state"
CONCURRENCY = 16
WARMUP = 300
VERSIONS = ROOT / "packages" / "flux-server" / "flux_server" / "db" / "migrations" / "versions"


def _revision(name: str) -> dict[str, Any]:
    """The module-level names of a migration script (its SQL), without running it."""
    namespace: dict[str, Any] = {}
    text = (VERSIONS / name).read_text().split("def upgrade")[0]
    exec(text.replace("from alembic import op", ""), namespace)
    return namespace


def _variants(db: Path) -> dict[str, tuple[Callable[[], None], Callable[[], None]]]:
    """Each variant's change of the schema and the change back, as (apply, undo)."""
    current = _revision("0011_count_upserts.py")
    triggers = dict(zip(("insert", "update"), current["_triggers"](current["_ADD"]), strict=True))
    old = dict(zip(("insert", "update"), current["_triggers"](current["_ADD_0004"]), strict=True))

    def run(*statements: str) -> Callable[[], None]:
        def apply() -> None:
            with sqlite3.connect(db, timeout=60) as conn:
                for statement in statements:
                    conn.execute(statement)

        return apply

    drop_triggers = tuple(f"DROP TRIGGER {name}" for name in COUNT_TRIGGERS[:2])
    return {
        "no count triggers": (run(*drop_triggers), run(*triggers.values())),
        "no listing indexes": (
            run(*(f"DROP INDEX {name}" for name in LISTING_INDEXES)),
            run(*(f"CREATE INDEX {n} ON executions ({c})" for n, c in LISTING_INDEXES.items())),
        ),
        "0004 triggers": (
            run(*drop_triggers, *old.values()),
            run(*drop_triggers, *triggers.values()),
        ),
        "0012 indexes": (
            run(
                f"CREATE INDEX {BY_WORKER} ON executions (worker_name, state)",
                f"DROP INDEX {OFFERED}",
                f"CREATE INDEX {OFFERED} ON executions (offered_to, state)",
            ),
            run(
                f"DROP INDEX {BY_WORKER}",
                f"DROP INDEX {OFFERED}",
                f"CREATE INDEX {OFFERED} ON executions (offered_to, state) "
                "WHERE offered_to IS NOT NULL",
            ),
        ),
    }


async def main(rounds: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        cluster = Cluster(home, f"sqlite:///{home}/flux.db")
        try:
            cluster.start(1)
            async with AsyncFluxClient(cluster.url) as client:
                await client.register_workflows(ROOT / "bench" / "workflows.py")
            (await run_many(cluster.url, "bench_one", 1, WARMUP, CONCURRENCY)).raise_for_failures()
            server = psutil.Process(cluster.procs[0].pid)
            variants = _variants(home / "flux.db")
            names = ["as migrated", *variants]
            samples: dict[str, list[float]] = {name: [] for name in names}
            for i in range(rounds):
                for name in names if i % 2 == 0 else reversed(names):
                    change = variants.get(name)
                    if change is not None:
                        change[0]()
                    before = sum(server.cpu_times()[:2])
                    result = await run_many(cluster.url, "bench_one", 1, runs, CONCURRENCY)
                    result.raise_for_failures()
                    spent = sum(server.cpu_times()[:2]) - before
                    if change is not None:
                        change[1]()
                    samples[name].append(spent / runs * 1e6)
                    print(f"round {i + 1} {name}: {samples[name][-1]:,.0f} us", file=sys.stderr)
        finally:
            cluster.stop()
    title = f"{rounds} rounds of {runs} runs of bench_one: the server's CPU per run (SQLite)"
    _table(title, "server CPU per run", samples, ",.0f")


def _table(title: str, what: str, samples: dict[str, list[float]], format: str) -> None:
    """Each variant's median, and the median of each round's ratio of "as migrated" to it."""
    base = samples["as migrated"]
    print(f"\n{title}")
    print(f"| variant | {what} | as migrated / variant |")
    print("|---|---:|---:|")
    for name, values in samples.items():
        ratios = [a / b for a, b in zip(base, values, strict=True)]
        ratio = "" if name == "as migrated" else f"{statistics.median(ratios):.3f}"
        print(f"| {name} | {statistics.median(values):{format}} us | {ratio} |")


_LIFE = (
    "INSERT INTO executions (id, workflow_id, workflow_name, workflow_version, state, "
    "generation, created_at, updated_at) VALUES (:id, 'w', 'flow', 1, 'SCHEDULED', 0, :t, :t)",
    "UPDATE executions SET offered_to = 'worker', offered_at = :t WHERE id = :id",
    "UPDATE executions SET state = 'CLAIMED', worker_name = 'worker', offered_to = NULL, "
    "offered_at = NULL, generation = generation + 1, claimed_at = :t WHERE id = :id",
    "UPDATE executions SET state = 'RUNNING', updated_at = :t WHERE id = :id",
    "UPDATE executions SET state = 'COMPLETED', updated_at = :t WHERE id = :id",
)
"""One execution's writes, from its creation to its end (the columns its states move)."""


def writes(rounds: int, n: int) -> None:
    from flux_server.__main__ import main as server_main

    with tempfile.TemporaryDirectory() as tmp:
        migrated = Path(tmp) / "migrated.db"
        if server_main(["db", "upgrade", "--database-url", f"sqlite:///{migrated}"]) != 0:
            raise SystemExit("migrating a SQLite file failed")
        conns: dict[str, sqlite3.Connection] = {}
        for name in ["as migrated", *_variants(migrated)]:
            path = Path(tmp) / f"{len(conns)}.db"
            path.write_bytes(migrated.read_bytes())
            change = _variants(path).get(name)
            if change is not None:
                change[0]()
            conns[name] = conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "INSERT INTO workflows (id, name, version, source, source_hash, options, "
                "created_at) VALUES ('w', 'flow', 1, '', '', '{}', 0)"
            )
        names = list(conns)
        samples: dict[str, list[float]] = {name: [] for name in names}
        made = 0
        for i in range(rounds):
            for name in names if i % 2 == 0 else reversed(names):
                conn, started = conns[name], time.process_time()
                for first in range(made, made + n, 50):
                    rows = [{"id": f"{j:012d}", "t": time.time()} for j in range(first, first + 50)]
                    for statement in _LIFE:
                        conn.execute("BEGIN")
                        conn.executemany(statement, rows)
                        conn.execute("COMMIT")
                samples[name].append((time.process_time() - started) / n * 1e6)
                made += n
        for conn in conns.values():
            conn.close()
    title = f"{rounds} rounds of {n} executions' writes, SQLite alone: CPU per execution"
    _table(title, "CPU per execution", samples, ",.1f")


if __name__ == "__main__":
    started = time.monotonic()
    if sys.argv[1:2] == ["writes"]:
        args = [int(a) for a in sys.argv[2:4]]
        writes(*(args + [8, 5000][len(args) :]))
    else:
        args = [int(a) for a in sys.argv[1:3]]
        asyncio.run(main(*(args + [4, 3000][len(args) :])))
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
