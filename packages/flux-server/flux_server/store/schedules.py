"""Schedules as clients manage them: create, read, update, pause, resume, delete, history, and
the ``<workflow><suffix>`` schedules that follow a workflow's ``schedule=`` option.

Firing lives in :mod:`flux_server.scheduler`; every change here sends the ``schedules`` note so
the scheduler of each replica re-reads when to wake up.

An update is one conditional write, a compare-and-set like the scheduler's tick claim: it
reads the row, works out the new values, and writes them only if the row still has the
``updated_at``, ``state`` and ``next_run_at`` it read (every write that matters to it changes
one of them), else reads again. A tick claimed first has fired and the update moves on from
it; an update committed first leaves the claim matching no row, so the old schedule's pending
tick does not fire and the new schedule takes over from now. No tick fires twice either way.
"""

from __future__ import annotations

import builtins
import logging
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flux.config import SchedulingSettings
from flux.domain import FINISHED_STATES, ExecutionState, utcnow
from flux.errors import ConflictError, InvalidScheduleError, NotFoundError, UsageError
from flux.protocol import (
    CreateScheduleRequest,
    ScheduleDeleted,
    ScheduleInfo,
    ScheduleRun,
    ScheduleRunState,
    ScheduleState,
    UpdateScheduleRequest,
)
from flux.schedules import OnceSchedule, Schedule, schedule_from_config

from flux_server.db import Database, Tx
from flux_server.db.tables import executions, schedule_runs, schedules, workflows
from flux_server.notes import SCHEDULES
from flux_server.source import WorkflowDefinition
from flux_server.store._common import new_id
from flux_server.store._schedule_changes import (
    SCHEDULE_FIELDS,
    due_text,
    first_run,
    update_values,
)
from flux_server.store.workflows import WorkflowStore

__all__ = ["ScheduleStore", "first_run", "run_state"]

log = logging.getLogger(__name__)

_S = schedules.c
_R = schedule_runs.c
_E = executions.c
# Names travel in URL paths (/schedules/{name}/...): the characters workflow names may use.
_NAME = re.compile(r"[\w.\- ]{1,255}")
_UPDATE_ATTEMPTS = 5
_FINISHED_RUN = {
    ExecutionState.COMPLETED: ScheduleRunState.COMPLETED,
    ExecutionState.FAILED: ScheduleRunState.FAILED,
    ExecutionState.CANCELLED: ScheduleRunState.CANCELLED,
}


def run_state(execution_state: ExecutionState) -> ScheduleRunState:
    """The run state a finished execution settles its run in."""
    return _FINISHED_RUN[execution_state]


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(
            f"invalid schedule name {name!r}: use 1 to 255 letters, digits, spaces, '_', '.' or "
            "'-' (e.g. 'daily_report')"
        )
    return name


class ScheduleStore:
    def __init__(self, db: Database, workflows: WorkflowStore, settings: SchedulingSettings):
        self.db = db
        self.workflows = workflows
        self.settings = settings

    # -- reads ---------------------------------------------------------------------------------

    async def list(
        self, workflow_id: str | None = None, active_only: bool = False
    ) -> builtins.list[ScheduleInfo]:
        """Schedules by name; ``workflow_id`` is a workflow name or the id of one of its
        versions."""
        query = sa.select(schedules).order_by(_S.name)
        if active_only:
            query = query.where(_S.state == ScheduleState.ACTIVE.value)
        async with self.db.read() as conn:
            if workflow_id is not None:
                by_id = (
                    await conn.execute(
                        sa.select(workflows.c.name).where(workflows.c.id == workflow_id)
                    )
                ).scalar()
                query = query.where(_S.workflow_name == (by_id or workflow_id))
            return [_info(row) for row in await conn.execute(query)]

    async def get(self, ref: str) -> ScheduleInfo:
        """A schedule by id or name. Raises NotFoundError."""
        async with self.db.read() as conn:
            return _info(await self._find(conn, ref))

    async def history(self, ref: str, limit: int = 50) -> builtins.list[ScheduleRun]:
        """The latest ``limit`` runs, newest first; a run whose execution has finished since
        shows how it ended even before the scheduler has recorded it."""
        async with self.db.read() as conn:
            row = await self._find(conn, ref)
            rows = await conn.execute(
                sa.select(schedule_runs, _E.state.label("execution_state"))
                .select_from(schedule_runs.outerjoin(executions, _E.id == _R.execution_id))
                .where(_R.schedule_id == row.id)
                .order_by(_R.fired_at.desc(), _R.scheduled_for.desc())
                .limit(limit)
            )
            return [_run(r) for r in rows]

    async def _find(self, conn: Any, ref: str, *, lock: bool = False) -> Any:
        query = sa.select(schedules).where(sa.or_(_S.id == ref, _S.name == ref)).limit(2)
        if lock and not self.db.is_sqlite:
            query = query.with_for_update()
        rows = (await conn.execute(query)).all()
        if not rows:
            raise NotFoundError(
                f"no schedule {ref!r} (by id or name); list them with `flux schedule list`",
                schedule=ref,
            )
        return next((r for r in rows if r.id == ref), rows[0])

    # -- changes -------------------------------------------------------------------------------

    async def create(self, request: CreateScheduleRequest) -> ScheduleInfo:
        """Raises UsageError/InvalidScheduleError (400), NotFoundError for an unknown workflow,
        ConflictError when the name is taken."""
        name = _check_name(request.name)
        schedule = schedule_from_config(request.schedule_config)
        await self.workflows.latest(request.workflow_name)
        now = utcnow()
        next_run_at = first_run(schedule, now, self.settings.once_schedule_tolerance)
        if next_run_at is None:
            assert isinstance(schedule, OnceSchedule)
            raise InvalidScheduleError(
                f"run_at {schedule.run_at.isoformat()} is in the past; give a future time"
            )
        row = _new_row(
            name, request.workflow_name, schedule, request.description, request.input, now
        )
        row["next_run_at"] = next_run_at
        try:
            async with self.db.write() as tx:
                await tx.conn.execute(sa.insert(schedules).values(row))
                tx.notify(SCHEDULES)
        except sa.exc.IntegrityError:
            raise ConflictError(
                f"a schedule named {name!r} exists; pick another name or delete it first",
                schedule=name,
            ) from None
        return _info(row)

    async def update(self, ref: str, request: UpdateScheduleRequest) -> ScheduleInfo:
        """Change the fields ``request`` carries (see :class:`UpdateScheduleRequest`) in one
        conditional write; the id, counters and history stay.

        Raises:
            NotFoundError: no such schedule.
            UsageError: nothing to change, or ``null`` where a value is needed.
            InvalidScheduleError: the new schedule is invalid (the message says why), or a
                ``once`` time that is past.
            ConflictError: the schedule kept changing under this update (retry).
        """
        given = request.model_fields_set
        if not given:
            raise UsageError(
                "nothing to change: give one or more of schedule_config, timezone, input, "
                "description, catch_up"
            )
        for key in sorted(given & SCHEDULE_FIELDS):
            if getattr(request, key) is None:
                raise UsageError(f"{key} cannot be null: a schedule always has one")
        for _ in range(_UPDATE_ATTEMPTS):
            async with self.db.read() as conn:
                row = await self._find(conn, ref)
            now = utcnow()
            values = update_values(row, request, now, self.settings.once_schedule_tolerance)
            async with self.db.write() as tx:
                written = (
                    await tx.conn.execute(
                        sa.update(schedules)
                        .where(
                            _S.id == row.id,
                            _S.updated_at == row.updated_at,
                            _S.state == row.state,
                            _S.next_run_at.is_not_distinct_from(row.next_run_at),
                        )
                        .values(updated_at=now, **values)
                        .returning(*schedules.c)
                    )
                ).first()
                if written is not None:
                    tx.notify(SCHEDULES)
            if written is not None:
                return _info(written)
            # Changed meanwhile (a tick fired, a pause, another update): read it again, by id
            # so that a schedule deleted and created again under the name is not the one changed.
            ref = row.id
        raise ConflictError(
            f"schedule {row.name!r} kept changing while it was being updated; try again",
            schedule=row.name,
        )

    async def pause(self, ref: str) -> ScheduleInfo:
        """Stop firing (idempotent). Raises ConflictError for a completed schedule."""
        async with self.db.write() as tx:
            row = await self._find_for_update(tx, ref)
            if row.state == ScheduleState.COMPLETED:
                raise _completed(row.name, "pause")
            if row.state == ScheduleState.ACTIVE:
                await self._update(tx, row.id, state=ScheduleState.PAUSED.value, next_run_at=None)
        return await self.get(row.id)

    async def resume(self, ref: str) -> ScheduleInfo:
        """Fire again from the next time after now (idempotent). Raises ConflictError for a
        completed schedule, or a ``once`` schedule whose time passed while it was paused."""
        async with self.db.write() as tx:
            row = await self._find_for_update(tx, ref)
            if row.state == ScheduleState.COMPLETED:
                raise _completed(row.name, "resume")
            if row.state == ScheduleState.PAUSED:
                schedule = schedule_from_config(row.schedule)
                now = utcnow()
                next_run_at = first_run(schedule, now, self.settings.once_schedule_tolerance)
                if next_run_at is None:
                    raise ConflictError(
                        f"schedule {row.name!r} was due once at {due_text(schedule)}, which passed "
                        "while it was paused; create a new schedule",
                        schedule=row.name,
                    )
                await self._update(
                    tx, row.id, state=ScheduleState.ACTIVE.value, next_run_at=next_run_at
                )
        return await self.get(row.id)

    async def delete(self, ref: str) -> ScheduleDeleted:
        """Delete a schedule and its history; the executions it started stay."""
        async with self.db.write() as tx:
            row = await self._find_for_update(tx, ref)
            await tx.conn.execute(sa.delete(schedule_runs).where(_R.schedule_id == row.id))
            await tx.conn.execute(sa.delete(schedules).where(_S.id == row.id))
            tx.notify(SCHEDULES)
        return ScheduleDeleted(id=row.id, name=row.name)

    async def sync_auto(self, definitions: Sequence[WorkflowDefinition]) -> None:
        """Make the ``<name><suffix>`` schedule of each registered workflow follow its
        ``schedule=`` option: created with it, updated when it changes, removed without it.

        A paused schedule stays paused; a schedule of that name that was not created from this
        workflow is left alone. Nothing happens when ``auto_schedule_enabled`` is off.
        """
        if not self.settings.auto_schedule_enabled:
            return
        for attempt in range(3):
            try:
                now = utcnow()
                async with self.db.write() as tx:
                    for definition in definitions:
                        await self._sync_one(tx, definition, now)
                    tx.notify(SCHEDULES)
                return
            except sa.exc.IntegrityError:
                # A concurrent registration (another replica) created the schedule first.
                if attempt == 2:
                    raise

    async def _sync_one(self, tx: Tx, definition: WorkflowDefinition, now: datetime) -> None:
        name = f"{definition.name}{self.settings.auto_schedule_suffix}"
        config = definition.options.schedule
        if not _NAME.fullmatch(name):
            if config is not None:
                log.warning("workflow %r: no auto schedule, %r is not a valid name", name, name)
            return
        row = (await tx.conn.execute(sa.select(schedules).where(_S.name == name))).first()
        if row is not None and (not row.auto or row.workflow_name != definition.name):
            if config is not None:
                log.warning(
                    "workflow %r: schedule %r exists and was not created from its schedule "
                    "option; leaving it as it is",
                    definition.name,
                    name,
                )
            return
        if config is None:
            if row is not None:
                await tx.conn.execute(sa.delete(schedule_runs).where(_R.schedule_id == row.id))
                await tx.conn.execute(sa.delete(schedules).where(_S.id == row.id))
            return
        try:
            schedule = schedule_from_config(config)
        except InvalidScheduleError as exc:  # read from source, which validated it already
            log.warning("workflow %r: no auto schedule: %s", definition.name, exc)
            return
        next_run_at = first_run(schedule, now, self.settings.once_schedule_tolerance)
        state = ScheduleState.ACTIVE if next_run_at is not None else ScheduleState.COMPLETED
        if row is None:
            description = f"created from the schedule option of workflow {definition.name!r}"
            values = _new_row(name, definition.name, schedule, description, None, now)
            values.update(auto=True, state=state.value, next_run_at=next_run_at)
            await tx.conn.execute(sa.insert(schedules).values(values))
        elif row.schedule != schedule.to_config():
            values = {"schedule": schedule.to_config()}
            if row.state != ScheduleState.PAUSED:
                values.update(state=state.value, next_run_at=next_run_at)
            await self._update(tx, row.id, **values)

    async def _find_for_update(self, tx: Tx, ref: str) -> Any:
        return await self._find(tx.conn, ref, lock=True)

    async def _update(self, tx: Tx, schedule_id: str, **values: Any) -> None:
        await tx.conn.execute(
            sa.update(schedules).where(_S.id == schedule_id).values(updated_at=utcnow(), **values)
        )
        tx.notify(SCHEDULES)


def _new_row(
    name: str,
    workflow_name: str,
    schedule: Schedule,
    description: str | None,
    input: Any,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "name": name,
        "workflow_name": workflow_name,
        "schedule": schedule.to_config(),
        "description": description,
        "input": input,
        "state": ScheduleState.ACTIVE.value,
        "auto": False,
        "next_run_at": None,
        "last_run_at": None,
        "run_count": 0,
        "failure_count": 0,
        "skip_count": 0,
        "catch_up": None,
        "created_at": now,
        "updated_at": now,
    }


def _completed(name: str, action: str) -> ConflictError:
    return ConflictError(
        f"schedule {name!r} has completed (a once schedule that ran); nothing to {action}",
        schedule=name,
    )


def _info(row: Any) -> ScheduleInfo:
    get = row.__getitem__ if isinstance(row, dict) else row._mapping.__getitem__
    return ScheduleInfo(
        id=get("id"),
        name=get("name"),
        workflow_name=get("workflow_name"),
        schedule_config=get("schedule"),
        description=get("description"),
        input=get("input"),
        state=ScheduleState(get("state")),
        auto=bool(get("auto")),
        next_run_at=get("next_run_at"),
        last_run_at=get("last_run_at"),
        run_count=get("run_count"),
        failure_count=get("failure_count"),
        skip_count=get("skip_count"),
        catch_up=get("catch_up"),
        created_at=get("created_at"),
        updated_at=get("updated_at"),
    )


def _run(row: Any) -> ScheduleRun:
    state = ScheduleRunState(row.state)
    execution_state = ExecutionState(row.execution_state) if row.execution_state else None
    finished_at = row.finished_at
    if state == ScheduleRunState.STARTED and execution_state in FINISHED_STATES:
        assert execution_state is not None
        state = run_state(execution_state)
    return ScheduleRun(
        id=row.id,
        schedule_id=row.schedule_id,
        execution_id=row.execution_id,
        scheduled_for=row.scheduled_for,
        fired_at=row.fired_at,
        state=state,
        execution_state=execution_state,
        finished_at=finished_at,
        error=row.error,
    )
