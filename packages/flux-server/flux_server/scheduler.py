"""The scheduler inside every server process: it fires due schedules, records each tick in the
schedule's history, settles runs when their executions finish, and cancels runs that exceed
``scheduling.execution_timeout``.

**Waking.** It sleeps until the earliest ``next_run_at`` of an active schedule (or the earliest
run timeout), and is woken early by any schedule change (here or, through NOTIFY, on another
replica) and by state changes of the executions it started. ``poll_interval`` only bounds a
sleep, as a safety net.

**Exactly once.** Firing a tick is one transaction: ``UPDATE schedules SET next_run_at = :next
WHERE id = :id AND state = 'active' AND next_run_at = :due`` (compare-and-set), then the
execution (through :meth:`ExecutionStore.create_in`, which also wakes dispatch) and the history
row. Replicas that race for the same tick serialise on the schedule's row; only the first
changes it, the others match no row and move on, and a crash before the commit leaves the tick
due for whoever looks next. ``schedule_runs`` also holds at most one row per (schedule, due
time). No leader is elected: any replica fires any tick.

**Catch-up.** A tick fired more than ``schedule_check_tolerance`` seconds late (for ``once``
schedules ``once_schedule_tolerance``) was missed, typically while no server ran. With
``catch_up = "once"`` (the default) it fires once, however many ticks were missed; with
``"skip"`` it is recorded as skipped. Either way ``next_run_at`` moves to the first time after
now, so missed ticks never pile up.

**Limits.** A tick of a schedule that already has ``max_concurrent_executions`` unfinished
executions (queued, claimed, running or cancelling; paused ones do not count) is skipped and
recorded. An execution still unfinished (and not paused) ``execution_timeout`` seconds after
its tick fired is cancelled through the normal cancel path and its run recorded as timed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flux.config import SchedulingSettings
from flux.domain import FINISHED_STATES, ExecutionState, utcnow
from flux.errors import ConflictError, FluxError, InvalidScheduleError, NotFoundError
from flux.protocol import SCHEDULE_RUN_FAILURES, ScheduleRunState, ScheduleState
from flux.schedules import OnceSchedule, schedule_from_config

from flux_server.db import Database, Tx
from flux_server.db.tables import executions, schedule_runs, schedules
from flux_server.store import ExecutionStore, WorkflowStore
from flux_server.store._common import new_id
from flux_server.store.schedules import run_state
from flux_server.store.workflows import LatestWorkflow

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)

_S = schedules.c
_R = schedule_runs.c
_E = executions.c
_BATCH = 100
_FINISHED = [s.value for s in FINISHED_STATES]
# Unfinished states that hold a worker or wait for one: what counts toward the concurrency
# limit and the execution timeout (a paused execution waits for a person, not for a machine).
_BUSY = [
    s.value
    for s in ExecutionState
    if s not in FINISHED_STATES and s not in (ExecutionState.PAUSED, ExecutionState.CREATED)
]
_RETRY_DELAY = 1.0
"""Seconds to wait after a pass that failed, so a broken database is not hammered."""


class Scheduler:
    """Started by the runtime (:meth:`run`); :meth:`wake` after any schedule change."""

    def __init__(
        self,
        db: Database,
        executions: ExecutionStore,
        workflows: WorkflowStore,
        settings: SchedulingSettings,
    ) -> None:
        self.db = db
        self.executions = executions
        self.workflows = workflows
        self.settings = settings
        self._wake = asyncio.Event()
        self._tracked: set[str] = set()
        """Executions this process started that have not finished yet."""
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.passes = 0

    def wake(self) -> None:
        self._wake.set()

    def execution_changed(self, execution_id: str) -> None:
        """Called for every execution state change; wakes up for the ones it started."""
        if execution_id in self._tracked:
            self._wake.set()

    async def run(self) -> None:
        """Schedule until cancelled."""
        poll = self.settings.poll_interval
        loaded = False
        while not self._stopping:
            self._wake.clear()
            self._idle.clear()
            try:
                if not loaded:
                    await self.load()
                    loaded = True
                delay = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler pass failed; retrying")
                delay = _RETRY_DELAY
            finally:
                self._idle.set()
            if self._stopping:
                return
            delay = min(max(delay, 0.0), poll)
            if delay > 0:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that arrives as the event fires, and shutdown would hang.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()

    async def stop(self, timeout: float = 5.0) -> None:
        """Let the pass in progress finish (so no transaction is cut short), then stop."""
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()

    async def run_once(self) -> float:
        """One pass: settle finished runs, time out overdue ones, fire due ticks. Returns the
        seconds until there is something to do again."""
        self.passes += 1
        await self._settle()
        failed = await self._enforce_timeouts(utcnow())
        fired, failures = await self._fire_due(utcnow())
        if failed or failures:
            return _RETRY_DELAY
        if fired >= _BATCH:
            return 0.0
        return await self._next_delay(utcnow())

    # -- firing --------------------------------------------------------------------------------

    async def _fire_due(self, now: datetime) -> tuple[int, int]:
        async with self.db.read() as conn:
            due = (
                await conn.execute(
                    sa.select(
                        _S.id, _S.name, _S.workflow_name, _S.schedule, _S.input, _S.next_run_at
                    )
                    .where(_S.state == ScheduleState.ACTIVE.value, _S.next_run_at <= now)
                    .order_by(_S.next_run_at)
                    .limit(_BATCH)
                )
            ).all()
        failures = 0
        for row in due:
            try:
                await self._fire(row, now)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("schedule %r: firing its tick failed", row.name)
        return len(due), failures

    async def _fire(self, row: Any, now: datetime) -> None:
        due: datetime = row.next_run_at
        try:
            schedule = schedule_from_config(row.schedule)
        except InvalidScheduleError as exc:  # stored by an older version, or edited by hand
            await self._disable(row, due, now, f"cannot read the schedule: {exc.message}")
            return
        following = schedule.next_run_after(due)
        # Several ticks missed: they collapse into this one, and the next is the first after now.
        next_run_at = schedule.next_run_after(now) if following and following <= now else following
        settings = self.settings
        once = isinstance(schedule, OnceSchedule)
        tolerance = settings.once_schedule_tolerance if once else settings.schedule_check_tolerance
        late = (now - due).total_seconds()
        skip: str | None = None
        if late > tolerance and self.settings.catch_up == "skip":
            skip = (
                f"missed: due at {due.isoformat()}, {late:.0f}s before any scheduler ran "
                "(scheduling.catch_up is 'skip')"
            )
        workflow: LatestWorkflow | None = None
        error: str | None = None
        try:
            workflow = await self.workflows.latest(row.workflow_name)
        except NotFoundError as exc:
            error = exc.message

        started: str | None = None
        async with self.db.write() as tx:
            claimed = await tx.conn.execute(
                _take_tick(row.id, due).values(
                    next_run_at=next_run_at,
                    state=(ScheduleState.ACTIVE if next_run_at else ScheduleState.COMPLETED).value,
                    updated_at=now,
                )
            )
            if claimed.rowcount != 1:
                return  # another replica fired it, or the schedule changed meanwhile
            recorded = await tx.conn.execute(
                sa.select(_R.id).where(_R.schedule_id == row.id, _R.scheduled_for == due)
            )
            if recorded.first() is not None:
                return  # this due time already ran (a once schedule set back to the same time)
            if skip is None and workflow is not None:
                busy = await self._busy(tx, row.id)
                limit = self.settings.max_concurrent_executions
                if busy >= limit:
                    skip = (
                        f"{busy} executions of this schedule are unfinished "
                        f"(scheduling.max_concurrent_executions is {limit})"
                    )
            run = {
                "id": new_id(),
                "schedule_id": row.id,
                "scheduled_for": due,
                "fired_at": now,
            }
            if skip is not None:
                run.update(state=ScheduleRunState.SKIPPED.value, error=skip)
                counters: dict[str, Any] = {"skip_count": _S.skip_count + 1}
            elif workflow is None:
                run.update(state=ScheduleRunState.ERROR.value, error=error, finished_at=now)
                counters = {"failure_count": _S.failure_count + 1}
            else:
                status = await self.executions.create_in(tx, workflow, row.input)
                started = status.execution_id
                run.update(state=ScheduleRunState.STARTED.value, execution_id=started)
                counters = {"run_count": _S.run_count + 1, "last_run_at": now}
            await tx.conn.execute(sa.insert(schedule_runs).values(run))
            await tx.conn.execute(sa.update(schedules).where(_S.id == row.id).values(**counters))
        if started is not None:
            self._tracked.add(started)
            log.info("schedule %r fired execution %s (due %s)", row.name, started, due.isoformat())
        else:
            log.info("schedule %r: tick due %s %s", row.name, due.isoformat(), run["state"])

    async def _disable(self, row: Any, due: datetime, now: datetime, error: str) -> None:
        """Pause a schedule that cannot fire, with an ``error`` run saying why."""
        async with self.db.write() as tx:
            claimed = await tx.conn.execute(
                _take_tick(row.id, due).values(
                    state=ScheduleState.PAUSED.value,
                    next_run_at=None,
                    failure_count=_S.failure_count + 1,
                    updated_at=now,
                )
            )
            if claimed.rowcount != 1:
                return
            run = {"id": new_id(), "schedule_id": row.id, "scheduled_for": due, "fired_at": now}
            run.update(state=ScheduleRunState.ERROR.value, error=error, finished_at=now)
            await tx.conn.execute(sa.insert(schedule_runs).values(run))
        log.error("schedule %r paused: %s", row.name, error)

    async def _busy(self, tx: Tx, schedule_id: str) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(schedule_runs.join(executions, _E.id == _R.execution_id))
            .where(
                _R.schedule_id == schedule_id,
                _R.state.in_([ScheduleRunState.STARTED.value, ScheduleRunState.TIMED_OUT.value]),
                _E.state.in_(_BUSY),
            )
        )
        return int((await tx.conn.execute(query)).scalar_one())

    # -- outcomes ------------------------------------------------------------------------------

    async def _settle(self) -> None:
        """Record how finished executions ended (exactly once, whichever replica sees it)."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(_R.id, _R.schedule_id, _R.execution_id, _E.state, _E.updated_at)
                    .select_from(schedule_runs.join(executions, _E.id == _R.execution_id))
                    .where(_R.state == ScheduleRunState.STARTED.value, _E.state.in_(_FINISHED))
                )
            ).all()
        if not rows:
            return
        async with self.db.write() as tx:
            for row in rows:
                state = run_state(ExecutionState(row.state))
                settled = await tx.conn.execute(
                    sa.update(schedule_runs)
                    .where(_R.id == row.id, _R.state == ScheduleRunState.STARTED.value)
                    .values(state=state.value, finished_at=row.updated_at)
                )
                if settled.rowcount == 1 and state in SCHEDULE_RUN_FAILURES:
                    await tx.conn.execute(
                        sa.update(schedules)
                        .where(_S.id == row.schedule_id)
                        .values(failure_count=_S.failure_count + 1)
                    )
        for row in rows:
            self._tracked.discard(row.execution_id)

    async def _enforce_timeouts(self, now: datetime) -> bool:
        """Cancel executions running past the timeout; ``True`` when one could not be."""
        timeout = self.settings.execution_timeout
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(_R.id, _R.schedule_id, _R.execution_id, _E.workflow_name)
                    .select_from(schedule_runs.join(executions, _E.id == _R.execution_id))
                    .where(
                        _R.state == ScheduleRunState.STARTED.value,
                        _R.fired_at <= now - timedelta(seconds=timeout),
                        _E.state.in_(_BUSY),
                    )
                )
            ).all()
        failed = False
        for row in rows:
            try:
                await self.executions.cancel(row.workflow_name, row.execution_id)
            except (ConflictError, NotFoundError):
                continue  # it finished meanwhile: settling records how
            except FluxError:
                failed = True
                log.exception("cannot cancel timed-out execution %s", row.execution_id)
                continue
            async with self.db.write() as tx:
                marked = await tx.conn.execute(
                    sa.update(schedule_runs)
                    .where(_R.id == row.id, _R.state == ScheduleRunState.STARTED.value)
                    .values(
                        state=ScheduleRunState.TIMED_OUT.value,
                        finished_at=now,
                        error=f"ran longer than scheduling.execution_timeout ({timeout:g}s); "
                        "cancelled",
                    )
                )
                if marked.rowcount == 1:
                    await tx.conn.execute(
                        sa.update(schedules)
                        .where(_S.id == row.schedule_id)
                        .values(failure_count=_S.failure_count + 1)
                    )
            self._tracked.discard(row.execution_id)
            log.warning("scheduled execution %s timed out and was cancelled", row.execution_id)
        return failed

    async def _next_delay(self, now: datetime) -> float:
        async with self.db.read() as conn:
            next_due = (
                await conn.execute(
                    sa.select(sa.func.min(_S.next_run_at)).where(
                        _S.state == ScheduleState.ACTIVE.value
                    )
                )
            ).scalar()
            oldest = (
                await conn.execute(
                    sa.select(sa.func.min(_R.fired_at))
                    .select_from(schedule_runs.join(executions, _E.id == _R.execution_id))
                    .where(_R.state == ScheduleRunState.STARTED.value, _E.state.in_(_BUSY))
                )
            ).scalar()
        delays = [self.settings.poll_interval]
        if next_due is not None:
            delays.append((_aware(next_due) - now).total_seconds())
        if oldest is not None:
            deadline = _aware(oldest) + timedelta(seconds=self.settings.execution_timeout)
            delays.append((deadline - now).total_seconds())
        return max(min(delays), 0.0)

    async def load(self) -> None:
        """Track the unfinished executions started before this process (so their ends wake
        it up)."""
        async with self.db.read() as conn:
            ids = (
                await conn.execute(
                    sa.select(_R.execution_id).where(
                        _R.state == ScheduleRunState.STARTED.value, _R.execution_id.is_not(None)
                    )
                )
            ).scalars()
            self._tracked.update(i for i in ids if i)


def _aware(value: Any) -> datetime:
    """A time read back from an aggregate (typed by SQLAlchemy, but be lenient)."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _take_tick(schedule_id: str, due: datetime) -> sa.Update:
    """The compare-and-set that makes one process (of any replica) own the tick due at
    ``due``: it matches only while the schedule is active and that tick is still next."""
    return sa.update(schedules).where(
        _S.id == schedule_id,
        _S.state == ScheduleState.ACTIVE.value,
        _S.next_run_at == due,
    )
