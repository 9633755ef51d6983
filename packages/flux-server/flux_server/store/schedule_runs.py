"""What the scheduler reads and writes: due ticks, the runs they record (fired, skipped,
failed), how runs end, and when there is something to do next.

Firing a tick is one transaction: a compare-and-set of the schedule's ``next_run_at`` (only
one process of any replica changes the row), then the execution and the run (see
:mod:`flux_server.scheduler`). The claim reads back the row it changed: a tick fires with the
input the schedule has when it is claimed, and a claim whose schedule or catch-up policy was
updated since the tick was read is given up (the next pass reads the tick again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flux.domain import ExecutionState
from flux.protocol import SCHEDULE_RUN_FAILURES, ScheduleRunState, ScheduleState

from flux_server.db import Database, Tx
from flux_server.db.tables import executions, schedule_runs, schedules
from flux_server.metrics import Fired, FireOutcome
from flux_server.store._common import new_id
from flux_server.store._states import BUSY, FINISHED
from flux_server.store.executions import ExecutionStore
from flux_server.store.schedules import run_state
from flux_server.store.workflows import LatestWorkflow

__all__ = ["DueTick", "RunningRun", "ScheduleRunStore"]

_S = schedules.c
_R = schedule_runs.c
_E = executions.c
_RUNS = schedule_runs.join(executions, _E.id == _R.execution_id)
_STARTED = ScheduleRunState.STARTED.value


@dataclass(frozen=True, slots=True)
class DueTick:
    """An active schedule whose next tick is due."""

    id: str
    name: str
    workflow_name: str
    schedule: dict[str, Any]
    """The schedule's stored configuration (``flux.schedules.schedule_from_config``)."""
    next_run_at: datetime
    catch_up: str | None = None
    """The schedule's own catch-up policy; ``None``: ``scheduling.catch_up``."""


@dataclass(frozen=True, slots=True)
class RunningRun:
    """A run whose execution has not finished yet."""

    id: str
    schedule_id: str
    execution_id: str
    workflow_name: str


class ScheduleRunStore:
    def __init__(self, db: Database, executions: ExecutionStore) -> None:
        self.db = db
        self.executions = executions

    async def due(self, now: datetime, limit: int) -> list[DueTick]:
        """Up to ``limit`` active schedules due at ``now``, the most overdue first."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(
                    _S.id,
                    _S.name,
                    _S.workflow_name,
                    _S.schedule,
                    _S.next_run_at,
                    _S.catch_up,
                )
                .where(_S.state == ScheduleState.ACTIVE.value, _S.next_run_at <= now)
                .order_by(_S.next_run_at)
                .limit(limit)
            )
            return [DueTick(*row) for row in rows]

    async def fire(
        self,
        tick: DueTick,
        now: datetime,
        next_run_at: datetime | None,
        *,
        workflow: LatestWorkflow | None,
        error: str | None,
        skip: str | None,
        max_concurrent: int,
    ) -> dict[str, Any] | None:
        """Take the tick due at ``tick.next_run_at`` (the schedule fires next at
        ``next_run_at``, ``None``: never) and record its run: skipped with ``skip``, an error
        without ``workflow``, skipped when the schedule has ``max_concurrent`` unfinished
        executions, else the execution of ``workflow`` started. The run's row; ``None`` when
        another replica took the tick, the schedule was updated since ``tick`` was read, or
        this due time already ran."""
        due = tick.next_run_at
        try:
            async with self.db.write() as tx:
                claimed = (
                    await tx.conn.execute(
                        _take_tick(tick.id, due)
                        .values(
                            next_run_at=next_run_at,
                            state=(
                                ScheduleState.ACTIVE if next_run_at else ScheduleState.COMPLETED
                            ).value,
                            updated_at=now,
                        )
                        .returning(_S.schedule, _S.catch_up, _S.input)
                    )
                ).first()
                if claimed is None:
                    return None  # another replica fired it, or the schedule changed meanwhile
                if (claimed.schedule, claimed.catch_up) != (tick.schedule, tick.catch_up):
                    # Updated to a schedule due at this same time: ``next_run_at`` and ``skip``
                    # were worked out from the old one. The next pass fires it as it is now.
                    raise _Updated
                recorded = await tx.conn.execute(
                    sa.select(_R.id).where(_R.schedule_id == tick.id, _R.scheduled_for == due)
                )
                if recorded.first() is not None:
                    return None  # this due time already ran (a once schedule set back to it)
                if skip is None and workflow is not None:
                    busy = await _busy(tx, tick.id)
                    if busy >= max_concurrent:
                        skip = (
                            f"{busy} executions of this schedule are unfinished "
                            f"(scheduling.max_concurrent_executions is {max_concurrent})"
                        )
                run: dict[str, Any] = {
                    "id": new_id(),
                    "schedule_id": tick.id,
                    "scheduled_for": due,
                    "fired_at": now,
                }
                if skip is not None:
                    run.update(state=ScheduleRunState.SKIPPED.value, error=skip)
                    counters: dict[str, Any] = {"skip_count": _S.skip_count + 1}
                    tx.record(Fired(FireOutcome.SKIPPED))
                elif workflow is None:
                    run.update(state=ScheduleRunState.ERROR.value, error=error, finished_at=now)
                    counters = {"failure_count": _S.failure_count + 1}
                    tx.record(Fired(FireOutcome.FAILED))
                else:
                    status = await self.executions.create_in(tx, workflow, claimed.input)
                    run.update(
                        state=ScheduleRunState.STARTED.value, execution_id=status.execution_id
                    )
                    counters = {"run_count": _S.run_count + 1, "last_run_at": now}
                    tx.record(Fired(FireOutcome.FIRED))
                await tx.conn.execute(sa.insert(schedule_runs).values(run))
                await tx.conn.execute(
                    sa.update(schedules).where(_S.id == tick.id).values(**counters)
                )
        except _Updated:
            return None
        return run

    async def disable(self, tick: DueTick, now: datetime, error: str) -> bool:
        """Pause a schedule that cannot fire, with an ``error`` run saying why; ``False`` when
        another replica took the tick first."""
        due = tick.next_run_at
        async with self.db.write() as tx:
            claimed = await tx.conn.execute(
                _take_tick(tick.id, due).values(
                    state=ScheduleState.PAUSED.value,
                    next_run_at=None,
                    failure_count=_S.failure_count + 1,
                    updated_at=now,
                )
            )
            if claimed.rowcount != 1:
                return False
            run = {"id": new_id(), "schedule_id": tick.id, "scheduled_for": due, "fired_at": now}
            run.update(state=ScheduleRunState.ERROR.value, error=error, finished_at=now)
            await tx.conn.execute(sa.insert(schedule_runs).values(run))
            tx.record(Fired(FireOutcome.FAILED))
        return True

    async def settle(self) -> list[str]:
        """Record how runs whose executions finished ended (exactly once, whichever replica
        sees it); the ids of those executions."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(_R.id, _R.schedule_id, _R.execution_id, _E.state, _E.updated_at)
                    .select_from(_RUNS)
                    .where(_R.state == _STARTED, _E.state.in_(FINISHED))
                )
            ).all()
        if not rows:
            return []
        async with self.db.write() as tx:
            for row in rows:
                state = run_state(ExecutionState(row.state))
                settled = await tx.conn.execute(
                    sa.update(schedule_runs)
                    .where(_R.id == row.id, _R.state == _STARTED)
                    .values(state=state.value, finished_at=row.updated_at)
                )
                if settled.rowcount == 1 and state in SCHEDULE_RUN_FAILURES:
                    await _count_failure(tx, row.schedule_id)
        return [row.execution_id for row in rows]

    async def overdue(self, fired_before: datetime) -> list[RunningRun]:
        """Runs fired before ``fired_before`` whose executions still hold or wait for a
        worker."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(_R.id, _R.schedule_id, _R.execution_id, _E.workflow_name)
                .select_from(_RUNS)
                .where(_R.state == _STARTED, _R.fired_at <= fired_before, _E.state.in_(BUSY))
            )
            return [RunningRun(*row) for row in rows]

    async def time_out(self, run: RunningRun, now: datetime, error: str) -> None:
        """Record that ``run`` timed out (its execution was cancelled), unless it settled."""
        async with self.db.write() as tx:
            marked = await tx.conn.execute(
                sa.update(schedule_runs)
                .where(_R.id == run.id, _R.state == _STARTED)
                .values(state=ScheduleRunState.TIMED_OUT.value, finished_at=now, error=error)
            )
            if marked.rowcount == 1:
                await _count_failure(tx, run.schedule_id)

    async def next_times(self) -> tuple[datetime | None, datetime | None]:
        """(the earliest tick due, the earliest fire time of a run still busy)."""
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
                    .select_from(_RUNS)
                    .where(_R.state == _STARTED, _E.state.in_(BUSY))
                )
            ).scalar()
        return _aware(next_due), _aware(oldest)

    async def started(self) -> list[str]:
        """The executions of runs not settled yet."""
        async with self.db.read() as conn:
            ids = (
                await conn.execute(
                    sa.select(_R.execution_id).where(
                        _R.state == _STARTED, _R.execution_id.is_not(None)
                    )
                )
            ).scalars()
            return [i for i in ids if i]


async def _busy(tx: Tx, schedule_id: str) -> int:
    """The schedule's executions that hold or wait for a worker."""
    query = (
        sa.select(sa.func.count())
        .select_from(_RUNS)
        .where(
            _R.schedule_id == schedule_id,
            _R.state.in_([_STARTED, ScheduleRunState.TIMED_OUT.value]),
            _E.state.in_(BUSY),
        )
    )
    return int((await tx.conn.execute(query)).scalar_one())


async def _count_failure(tx: Tx, schedule_id: str) -> None:
    await tx.conn.execute(
        sa.update(schedules).where(_S.id == schedule_id).values(failure_count=_S.failure_count + 1)
    )


def _aware(value: Any) -> datetime | None:
    """A time read back from an aggregate (typed by SQLAlchemy, but be lenient)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class _Updated(Exception):
    """Rolls back a claim whose schedule was updated since its tick was read."""


def _take_tick(schedule_id: str, due: datetime) -> sa.Update:
    """The compare-and-set that makes one process (of any replica) own the tick due at
    ``due``: it matches only while the schedule is active and that tick is still next."""
    return sa.update(schedules).where(
        _S.id == schedule_id,
        _S.state == ScheduleState.ACTIVE.value,
        _S.next_run_at == due,
    )
