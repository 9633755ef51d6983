"""Schedules with real processes: an auto schedule fired by a uvicorn server and run by a real
flux-worker (pause, resume, history), and two server replicas on one PostgreSQL database that
fire every tick exactly once."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from flux.client import FluxClient
from flux.domain import ExecutionState
from flux.protocol import ScheduleRunState, ScheduleState
from flux.schedules import interval

from tests.support.cluster import make_cluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

TICKER = """
from flux import ExecutionContext, interval, task, workflow


@task
async def stamp(value: str) -> str:
    return f"tick {value}"


@workflow.with_options(name="ticker", schedule=interval(seconds=1))
async def ticker(ctx: ExecutionContext[None]) -> str:
    return await stamp(ctx.execution_id)
"""

PLAIN = """
from flux import workflow


@workflow
async def plain(ctx):
    return "done"
"""


def completed_runs(client: FluxClient, schedule: str) -> list:
    runs = client.schedule_history(schedule, limit=1000)
    return [r for r in runs if r.state == ScheduleRunState.COMPLETED]


def test_auto_schedule_runs_on_a_real_worker(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, FLUX_SCHEDULING__POLL_INTERVAL="1")
    try:
        cluster.start_server()
        cluster.start_worker("w1")
        source = tmp_path / "ticker.py"
        source.write_text(TICKER)
        with FluxClient(cluster.url) as client:
            client.register_workflows(source)
            (schedule,) = client.list_schedules(workflow_id="ticker")
            assert (schedule.name, schedule.auto) == ("ticker_auto", True)

            wait_until(
                lambda: len(completed_runs(client, "ticker_auto")) >= 2, timeout=60, what="2 runs"
            )
            paused = client.pause_schedule("ticker_auto")
            before = len(client.schedule_history("ticker_auto", limit=1000))
            assert paused.state == ScheduleState.PAUSED
            assert client.get_schedule("ticker_auto").next_run_at is None

            client.resume_schedule("ticker_auto")

            def resumed() -> bool:
                runs = completed_runs(client, "ticker_auto")
                return any(r.scheduled_for > paused.updated_at for r in runs)

            wait_until(resumed, timeout=60, what="a run after resuming")
            client.pause_schedule("ticker_auto")
            runs = client.schedule_history("ticker_auto", limit=1000)
            assert len(runs) > before
            for run in runs:
                if run.state != ScheduleRunState.COMPLETED:
                    continue
                status = client.status("ticker", run.execution_id)
                assert status.state == ExecutionState.COMPLETED
                assert status.output == f"tick {run.execution_id}"
            final = client.get_schedule("ticker_auto")
            assert final.run_count == len([r for r in runs if r.execution_id])
            assert final.failure_count == 0
    except BaseException:
        print(cluster.tail())
        raise
    finally:
        cluster.stop()


@pytest.mark.postgres
def test_two_replicas_fire_each_tick_once(tmp_path: Path, pg_url: str) -> None:
    """Two servers share the database; both schedulers wake for the same ticks. Every tick
    becomes exactly one execution, whichever replica fires it."""
    env = {
        "FLUX_SCHEDULING__POLL_INTERVAL": "1",
        "FLUX_SCHEDULING__MAX_CONCURRENT_EXECUTIONS": "1000",
        # Replicas of one database share its secrets key (a replica with another refuses to
        # start); each home would otherwise generate its own.
        "FLUX_SECURITY__ENCRYPTION_KEY": "key-material-shared-by-both-replicas-0123",
    }
    replicas = [make_cluster(tmp_path / name, pg_url, **env) for name in ("a", "b")]
    names = [f"tick-{i}" for i in range(4)]
    try:
        for replica in replicas:
            replica.start_server()
        source = tmp_path / "plain.py"
        source.write_text(PLAIN)
        a, b = (FluxClient(r.url) for r in replicas)
        with a, b:
            a.register_workflows(source)
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
            for name in names:
                a.create_schedule("plain", name, interval(seconds=1, start_at=start))

            def enough() -> bool:
                return all(len(b.schedule_history(n, limit=1000)) >= 5 for n in names)

            wait_until(enough, timeout=60, what="5 ticks of every schedule")
            for name in names:
                b.pause_schedule(name)
            runs = {n: a.schedule_history(n, limit=1000) for n in names}
            counts = {n: a.get_schedule(n).run_count for n in names}

        with psycopg.connect(pg_url) as conn:
            executions = conn.execute(
                "SELECT count(*) FROM executions WHERE workflow_name = 'plain'"
            ).fetchone()[0]
        fired = [r for n in names for r in runs[n] if r.execution_id]
        assert executions == len(fired) == sum(counts.values())
        assert len({r.execution_id for r in fired}) == len(fired)
        for name in names:
            due = [r.scheduled_for for r in runs[name]]
            assert len(due) == len(set(due)), f"{name}: a tick ran twice"
            # Ticks are whole seconds after start_at (a late one collapses missed ones).
            assert all((d - start).total_seconds() % 1 == 0 for d in due)
        # Each fire was logged by the one replica that made it.
        logs = [(r.home / "server.log").read_text() for r in replicas]
        per_replica = [len(re.findall(r"schedule '[^']+' fired execution", log)) for log in logs]
        assert sum(per_replica) == len(fired), per_replica
        print(f"fired by replica a, b: {per_replica}")
    except BaseException:
        for replica in replicas:
            print(replica.tail())
        raise
    finally:
        for replica in replicas:
            replica.stop()
