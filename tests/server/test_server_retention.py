"""Retention: old finished executions go with their events and schedule history; nothing
running, paused or queued is ever touched, whatever its age."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import sqlalchemy as sa
from flux.config import RetentionSettings
from flux.domain import EventType, ExecutionState, utcnow
from flux_server.db.tables import events, executions, schedule_runs, schedules
from flux_server.retention import Retention, prune
from server_support import record

TWO = b"""
from flux import workflow

@workflow
async def keep(ctx):
    return "kept"
"""


async def _executions_in_every_state(server) -> dict[str, str]:
    """Execution id by what it is: completed, cancelled, paused, running, queued."""
    worker = await server.worker()
    ids = {}
    done = await server.client.run("hello", "a")
    await worker.finish(await worker.take(), "done")
    ids["completed"] = done.execution_id
    paused = await server.client.run("hello", "b")
    claim = await worker.take()
    await worker.checkpoint(
        claim.execution_id,
        claim.generation,
        [record(EventType.WORKFLOW_STARTED), record(EventType.WORKFLOW_PAUSED, "approval")],
    )
    ids["paused"] = paused.execution_id
    running = await server.client.run("hello", "c")
    claim = await worker.take()
    await worker.checkpoint(
        claim.execution_id, claim.generation, [record(EventType.WORKFLOW_STARTED)]
    )
    ids["running"] = running.execution_id
    await worker.close()
    ids["queued"] = (await server.client.run("hello", "d")).execution_id
    cancelled = await server.client.run("hello", "e")
    await server.client.cancel("hello", cancelled.execution_id)
    ids["cancelled"] = cancelled.execution_id
    return ids


async def _age(server, days: float, ids: list[str] | None = None) -> None:
    """Make executions look created and last updated ``days`` ago (an execution is never
    updated before it is created: the prune walks them in creation order)."""
    when = utcnow() - timedelta(days=days)
    update = sa.update(executions).values(created_at=when, updated_at=when)
    if ids is not None:
        update = update.where(executions.c.id.in_(ids))
    await server.runtime.db.run_write(lambda tx: tx.conn.execute(update))


async def _left(server) -> tuple[set[str], set[str]]:
    def read(conn):
        rows = set(conn.execute(sa.select(executions.c.id)).scalars())
        with_events = set(conn.execute(sa.select(events.c.execution_id).distinct()).scalars())
        return rows, with_events

    return await server.runtime.db.run_read(read)


async def test_prune_deletes_only_old_finished_executions_and_their_events(server) -> None:
    await server.register()
    ids = await _executions_in_every_state(server)
    recent = (await server.client.run("hello", "f")).execution_id
    await server.client.cancel("hello", recent)  # finished, but not old
    await _age(server, 40, [i for i in ids.values()])
    rows, with_events = await _left(server)
    assert set(ids.values()) <= rows and ids["completed"] in with_events

    deleted = await prune(server.runtime.db, older_than=30 * 86_400, batch_size=1)

    assert deleted == 2
    rows, with_events = await _left(server)
    assert ids["completed"] not in rows and ids["cancelled"] not in rows
    assert ids["completed"] not in with_events and ids["cancelled"] not in with_events
    for alive in ("paused", "running", "queued"):
        assert ids[alive] in rows, alive  # whatever its age
    assert recent in rows
    status = await server.client.status("hello", ids["paused"], detailed=True)
    assert status.state == ExecutionState.PAUSED and status.events  # its history intact


async def test_a_pruned_execution_takes_its_schedule_history_along(server) -> None:
    await server.register()
    ids = await _executions_in_every_state(server)
    now = utcnow()

    def link(tx):
        tx.conn.execute(
            sa.insert(schedules).values(
                id="s1", name="nightly", workflow_name="hello", schedule={"type": "cron"},
                state="active", created_at=now, updated_at=now,
            )
        )  # fmt: skip
        for n, key in enumerate(("completed", "paused")):
            tx.conn.execute(
                sa.insert(schedule_runs).values(
                    id=f"r{n}", schedule_id="s1", execution_id=ids[key],
                    scheduled_for=now - timedelta(days=n + 1), fired_at=now, state="done",
                )
            )  # fmt: skip

    await server.runtime.db.run_write(link)
    await _age(server, 10)
    await prune(server.runtime.db, older_than=86_400)

    def runs(conn):
        return set(conn.execute(sa.select(schedule_runs.c.execution_id)).scalars())

    assert await server.runtime.db.run_read(runs) == {ids["paused"]}


async def test_retention_passes_follow_the_per_workflow_ages(server) -> None:
    await server.register()
    await server.register(TWO)
    worker = await server.worker()
    ids = {}
    for name in ("hello", "keep"):
        run = await server.client.run(name, None)
        await worker.finish(await worker.take(), "x")
        ids[name] = run.execution_id
    await _age(server, 5)

    off = Retention(server.runtime.db, RetentionSettings())
    assert not off.enabled
    assert not Retention(server.runtime.db, RetentionSettings(max_age_days=float("inf"))).enabled
    keep_forever = RetentionSettings(max_age_days=1, workflows={"keep": None})
    assert await Retention(server.runtime.db, keep_forever).run_once() == 1
    rows, _ = await _left(server)
    assert ids["hello"] not in rows and ids["keep"] in rows

    longer = RetentionSettings(workflows={"keep": 7})
    assert Retention(server.runtime.db, longer).enabled
    assert await Retention(server.runtime.db, longer).run_once() == 0
    also_forever = RetentionSettings(max_age_days=1, workflows={"keep": float("inf")})
    assert await Retention(server.runtime.db, also_forever).run_once() == 0
    assert await Retention(server.runtime.db, RetentionSettings(workflows={"keep": 2})).run_once()
    rows, _ = await _left(server)
    assert ids["keep"] not in rows


async def test_prune_over_http(server) -> None:
    await server.register()
    ids = await _executions_in_every_state(server)
    await _age(server, 3)
    assert (await server.client.prune_executions(timedelta(days=5))).deleted == 0
    answer = await server.client.prune_executions(86_400, workflow="hello")
    assert answer.deleted == 2
    rows, _ = await _left(server)
    assert rows == {ids["paused"], ids["running"], ids["queued"]}
    refused = await server.http.post("/executions/prune", json={"older_than": 0})
    assert refused.status_code in (400, 422)
    assert "older_than" in refused.text


def test_the_operations_doc_example_is_valid_settings() -> None:
    import re
    import tomllib
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
    blocks = re.findall(r"```toml\n(.*?)```", doc.read_text(), flags=re.S)
    (block,) = [b for b in blocks if "[flux.retention]" in b]
    settings = RetentionSettings(**tomllib.loads(textwrap.dedent(block))["flux"]["retention"])
    assert settings.max_age_days == 30 and settings.workflows["nightly_etl"] == 7
    assert Retention(None, settings).enabled  # type: ignore[arg-type]  # no database needed
