"""The scheduler firing for real (in-process server, fake workers made of the real client):
ticks run and are recorded, pause stops them, resume restarts them, missed ticks after downtime
fire once (or are skipped), the concurrency limit and the execution timeout hold, failures are
counted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flux.client import AsyncFluxClient
from flux.config import SchedulingSettings
from flux.domain import EventType, ExecutionState
from flux.protocol import OutputRecord, ScheduleRunState, ScheduleState
from flux.schedules import cron, interval, once
from flux_server import ServerOptions, create_app
from flux_server.db import Database
from flux_server.db.tables import schedules
from flux_server.runtime import Runtime
from flux_server.testing import serve_in_process
from server_support import HELLO, FakeWorker, Server, record

from tests.support.waiting import wait_until_async

FAST = SchedulingSettings(poll_interval=1.0)
"""Test-sized: the scheduler is woken by events; this only bounds how long it may sleep."""
DAILY = "0 3 * * *"


@contextlib.asynccontextmanager
async def working(worker: FakeWorker, fail: bool = False) -> AsyncIterator[list[str]]:
    """Run every offer ``worker`` gets to completion (or failure) in the background."""
    done: list[str] = []

    async def loop() -> None:
        while True:
            claim = await worker.take(timeout=3600)
            if fail:
                await worker.checkpoint(
                    claim.execution_id,
                    claim.generation,
                    [
                        record(EventType.WORKFLOW_STARTED, name=claim.workflow_name),
                        record(EventType.WORKFLOW_FAILED, "boom", name=claim.workflow_name),
                    ],
                    OutputRecord.from_value("boom", "json"),
                )
            else:
                await worker.finish(claim, f"ran {claim.execution_id}")
            done.append(claim.execution_id)

    task = asyncio.create_task(loop())
    try:
        yield done
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def set_due(runtime: Runtime, name: str, due: datetime, **values: Any) -> None:
    """Move a schedule's next tick (what time passing, or a server being down, does)."""
    async with runtime.db.write() as tx:
        await tx.conn.execute(
            sa.update(schedules).where(schedules.c.name == name).values(next_run_at=due, **values)
        )


async def test_ticks_fire_pause_stops_them_resume_restarts_them(start_server) -> None:
    server: Server = await start_server(scheduling=FAST)
    await server.register(HELLO)
    worker = await server.worker()
    client = server.client
    async with working(worker):
        created = await client.create_schedule(
            "hello", "every_second", interval(seconds=1), input="tick"
        )

        async def two_completed() -> Any:
            runs = await client.schedule_history("every_second")
            return len([r for r in runs if r.state == ScheduleRunState.COMPLETED]) >= 2 and runs

        runs = await wait_until_async(two_completed, timeout=30)
        paused = await client.pause_schedule("every_second")
        assert paused.state == ScheduleState.PAUSED

        # Paused: even a tick that is due does not fire.
        fired = len(await client.schedule_history("every_second", limit=1000))
        await set_due(server.runtime, "every_second", datetime.now(UTC) - timedelta(seconds=5))
        for _ in range(3):
            await server.runtime.scheduler.run_once()
        assert len(await client.schedule_history("every_second", limit=1000)) == fired

        resumed = await client.resume_schedule("every_second")
        assert resumed.state == ScheduleState.ACTIVE
        assert resumed.next_run_at is not None and resumed.next_run_at > paused.updated_at

        async def fired_again() -> Any:
            runs = await client.schedule_history("every_second", limit=1000)
            new = [r for r in runs if r.scheduled_for > paused.updated_at]
            return any(r.state == ScheduleRunState.COMPLETED for r in new) and runs

        runs = await wait_until_async(fired_again, timeout=30)
        await client.pause_schedule("every_second")

    runs = await client.schedule_history("every_second", limit=1000)
    assert [r.fired_at for r in runs] == sorted((r.fired_at for r in runs), reverse=True)
    assert len({r.scheduled_for for r in runs}) == len(runs)  # one run per tick
    assert len({r.execution_id for r in runs}) == len(runs)
    assert all(r.schedule_id == created.id for r in runs)
    final = await client.get_schedule("every_second")
    started = [r for r in runs if r.execution_id is not None]
    assert final.run_count == len(started)
    assert final.last_run_at == max(r.fired_at for r in started)
    assert final.failure_count == 0

    # Each run is a real execution of the latest version, with the schedule's input.
    completed = [r for r in runs if r.state == ScheduleRunState.COMPLETED]
    status = await client.status("hello", completed[0].execution_id)
    assert (status.state, status.input) == (ExecutionState.COMPLETED, "tick")
    assert status.output == f"ran {status.execution_id}"
    assert completed[0].execution_state == ExecutionState.COMPLETED
    assert completed[0].finished_at is not None


async def test_failures_are_recorded_and_counted(start_server) -> None:
    server: Server = await start_server(scheduling=FAST)
    await server.register(HELLO)
    worker = await server.worker()
    async with working(worker, fail=True):
        await server.client.create_schedule("hello", "doomed", once(datetime.now(UTC)))

        async def failed() -> Any:
            schedule = await server.client.get_schedule("doomed")
            return schedule.failure_count == 1 and schedule

        schedule = await wait_until_async(failed, timeout=30)
    assert schedule.state == ScheduleState.COMPLETED  # a once schedule runs once
    assert (schedule.run_count, schedule.next_run_at) == (1, None)
    (run,) = await server.client.schedule_history("doomed")
    assert (run.state, run.execution_state) == (ScheduleRunState.FAILED, ExecutionState.FAILED)
    with pytest.raises(Exception, match="has completed"):
        await server.client.resume_schedule("doomed")


async def test_a_schedule_for_a_workflow_that_is_gone_records_an_error(start_server) -> None:
    server: Server = await start_server(scheduling=FAST)
    await server.register(HELLO)
    await server.client.create_schedule("hello", "orphan", interval(hours=1))
    await set_due(server.runtime, "orphan", datetime.now(UTC), workflow_name="deleted_flow")
    server.runtime.scheduler.wake()

    async def errored() -> Any:
        return await server.client.schedule_history("orphan")

    (run,) = await wait_until_async(errored, timeout=30)
    assert (run.state, run.execution_id) == (ScheduleRunState.ERROR, None)
    assert "no workflow named 'deleted_flow'" in (run.error or "")
    assert (await server.client.get_schedule("orphan")).failure_count == 1


async def test_an_unreadable_schedule_is_paused_with_the_reason(start_server) -> None:
    server: Server = await start_server(scheduling=FAST)
    await server.register(HELLO)
    await server.client.create_schedule("hello", "garbled", interval(hours=1))
    await set_due(server.runtime, "garbled", datetime.now(UTC), schedule={"type": "weekly"})
    server.runtime.scheduler.wake()

    async def paused() -> Any:
        schedule = await server.client.get_schedule("garbled")
        return schedule.state == ScheduleState.PAUSED and schedule

    schedule = await wait_until_async(paused, timeout=30)
    assert (schedule.failure_count, schedule.run_count) == (1, 0)
    (run,) = await server.client.schedule_history("garbled")
    assert run.state == ScheduleRunState.ERROR
    assert "unknown schedule type 'weekly'" in (run.error or "")


async def test_max_concurrent_executions_skips_ticks(start_server) -> None:
    """No worker: the first execution stays queued, so later ticks are skipped and recorded."""
    limited = FAST.model_copy(update={"max_concurrent_executions": 1})
    server: Server = await start_server(scheduling=limited)
    await server.register(HELLO)
    await server.client.create_schedule("hello", "busy", interval(seconds=1))

    async def skipped() -> Any:
        runs = await server.client.schedule_history("busy")
        return any(r.state == ScheduleRunState.SKIPPED for r in runs) and runs

    runs = await wait_until_async(skipped, timeout=30)
    await server.client.pause_schedule("busy")
    started = [r for r in runs if r.state == ScheduleRunState.STARTED]
    assert len(started) == 1
    assert started[0].execution_state == ExecutionState.SCHEDULED
    skip = next(r for r in runs if r.state == ScheduleRunState.SKIPPED)
    assert skip.execution_id is None
    assert "max_concurrent_executions is 1" in (skip.error or "")
    schedule = await server.client.get_schedule("busy")
    assert schedule.run_count == 1 and schedule.skip_count >= 1


async def test_execution_timeout_cancels_through_the_normal_path(start_server) -> None:
    server: Server = await start_server(
        scheduling=FAST.model_copy(update={"execution_timeout": 1.0, "poll_interval": 30.0})
    )
    await server.register(HELLO)
    worker = await server.worker()
    await server.client.create_schedule("hello", "slow", once(datetime.now(UTC)))
    claim = await worker.take(timeout=30)
    await worker.checkpoint(
        claim.execution_id, claim.generation, [record(EventType.WORKFLOW_STARTED)]
    )
    # The worker holding it is asked to cancel, as for `flux workflow cancel`.
    cancel = await worker.next_cancel(timeout=30)
    assert cancel.execution_id == claim.execution_id

    async def timed_out() -> Any:
        runs = await server.client.schedule_history("slow")
        return runs and runs[0].state == ScheduleRunState.TIMED_OUT and runs[0]

    run = await wait_until_async(timed_out, timeout=30)
    assert "execution_timeout (1s)" in (run.error or "")
    assert run.execution_state == ExecutionState.CANCELLING
    assert (await server.client.get_schedule("slow")).failure_count == 1

    # The worker unwinds: the execution ends cancelled, the run stays a timeout (one failure).
    await worker.checkpoint(
        claim.execution_id, claim.generation, [record(EventType.WORKFLOW_CANCELLED)]
    )
    status = await server.client.status("hello", claim.execution_id)
    assert status.state == ExecutionState.CANCELLED
    await server.runtime.scheduler.run_once()
    (run,) = await server.client.schedule_history("slow")
    assert run.state == ScheduleRunState.TIMED_OUT
    assert (await server.client.get_schedule("slow")).failure_count == 1


# -- downtime -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(options: ServerOptions) -> AsyncIterator[tuple[AsyncFluxClient, Runtime]]:
    """A server that stops when the block ends (so a test can restart it)."""
    app = create_app(options)
    async with serve_in_process(app) as transport:
        async with AsyncFluxClient("http://flux.test", transport=transport) as client:
            yield client, app.state.runtime


@pytest.mark.parametrize(
    ("policy", "kind"), [("once", "cron"), ("once", "once"), ("skip", "cron"), ("skip", "once")]
)
async def test_missed_ticks_after_downtime(options: ServerOptions, policy: str, kind: str) -> None:
    """The server was down for three days: a daily schedule missed three ticks, a once
    schedule its only one. ``catch_up="once"`` runs the schedule once; ``"skip"`` records the
    tick as skipped. Either way the next run is in the future."""
    options = replace(options, scheduling=FAST.model_copy(update={"catch_up": policy}))
    async with serving(options) as (client, _):
        await client.register_workflows(HELLO, filename="flows.py")
        later = datetime.now(UTC) + timedelta(days=1)
        await client.create_schedule(
            "hello", "nightly", cron(DAILY) if kind == "cron" else once(later)
        )

    # While no server ran, time passed: its tick came and went three days ago.
    today = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0)
    missed = today - timedelta(days=3)
    config = (cron(DAILY) if kind == "cron" else once(missed)).to_config()
    db = Database(options.database_url)
    try:
        async with db.write() as tx:
            await tx.conn.execute(
                sa.update(schedules)
                .where(schedules.c.name == "nightly")
                .values(next_run_at=missed, schedule=config)
            )
    finally:
        await db.dispose()

    async with serving(options) as (client, runtime):

        async def recorded() -> Any:
            return await client.schedule_history("nightly")

        (run,) = await wait_until_async(recorded, timeout=30)
        for _ in range(2):  # later passes change nothing
            await runtime.scheduler.run_once()
        assert len(await client.schedule_history("nightly")) == 1
        after = await client.get_schedule("nightly")

    assert run.scheduled_for == missed
    if policy == "once":
        assert run.state == ScheduleRunState.STARTED and run.execution_id is not None
        assert (after.run_count, after.skip_count) == (1, 0)
    else:
        assert run.state == ScheduleRunState.SKIPPED and run.execution_id is None
        assert "missed" in (run.error or "") and "catch_up is 'skip'" in (run.error or "")
        assert (after.run_count, after.skip_count) == (0, 1)
    if kind == "cron":
        assert after.state == ScheduleState.ACTIVE
        assert after.next_run_at is not None
        assert datetime.now(UTC) < after.next_run_at <= datetime.now(UTC) + timedelta(days=1)
        assert (after.next_run_at.hour, after.next_run_at.minute) == (3, 0)
    else:
        assert (after.state, after.next_run_at) == (ScheduleState.COMPLETED, None)
