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
time). No leader is elected: any replica fires any tick. The statements live in
:class:`~flux_server.store.schedule_runs.ScheduleRunStore`; this module decides.

**Catch-up.** A tick fired more than ``schedule_check_tolerance`` seconds late (for ``once``
schedules ``once_schedule_tolerance``) was missed, typically while no server ran. With
``catch_up = "once"`` (the default) it fires once, however many ticks were missed; with
``"skip"`` it is recorded as skipped; a schedule's own ``catch_up`` overrides the setting.
Either way ``next_run_at`` moves to the first time after now, so missed ticks never pile up.

**Limits.** A tick of a schedule that already has ``max_concurrent_executions`` unfinished
executions (queued, claimed, running or cancelling; paused ones do not count) is skipped and
recorded. An execution still unfinished (and not paused) ``execution_timeout`` seconds after
its tick fired is cancelled through the normal cancel path and its run recorded as timed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from flux.config import SchedulingSettings
from flux.domain import utcnow
from flux.errors import ConflictError, FluxError, InvalidScheduleError, NotFoundError
from flux.schedules import OnceSchedule, schedule_from_config

from flux_server.db import Database
from flux_server.store import ExecutionStore, WorkflowStore
from flux_server.store.schedule_runs import DueTick, ScheduleRunStore
from flux_server.store.workflows import LatestWorkflow

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)

_BATCH = 100
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
        self.runs = ScheduleRunStore(db, executions)
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
        due = await self.runs.due(now, _BATCH)
        failures = 0
        for tick in due:
            try:
                await self._fire(tick, now)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("schedule %r: firing its tick failed", tick.name)
        return len(due), failures

    async def _fire(self, tick: DueTick, now: datetime) -> None:
        due = tick.next_run_at
        try:
            schedule = schedule_from_config(tick.schedule)
        except InvalidScheduleError as exc:  # stored by an older version, or edited by hand
            reason = f"cannot read the schedule: {exc.message}"
            if await self.runs.disable(tick, now, reason):
                log.error("schedule %r paused: %s", tick.name, reason)
            return
        following = schedule.next_run_after(due)
        # Several ticks missed: they collapse into this one, and the next is the first after now.
        next_run_at = schedule.next_run_after(now) if following and following <= now else following
        settings = self.settings
        once = isinstance(schedule, OnceSchedule)
        tolerance = settings.once_schedule_tolerance if once else settings.schedule_check_tolerance
        late = (now - due).total_seconds()
        skip: str | None = None
        policy = tick.catch_up or settings.catch_up
        if late > tolerance and policy == "skip":
            whose = "scheduling.catch_up" if tick.catch_up is None else "the schedule's catch_up"
            skip = (
                f"missed: due at {due.isoformat()}, {late:.0f}s before any scheduler ran "
                f"({whose} is 'skip')"
            )
        workflow: LatestWorkflow | None = None
        error: str | None = None
        try:
            workflow = await self.workflows.latest(tick.workflow_name)
        except NotFoundError as exc:
            error = exc.message
        run = await self.runs.fire(
            tick,
            now,
            next_run_at,
            workflow=workflow,
            error=error,
            skip=skip,
            max_concurrent=settings.max_concurrent_executions,
        )
        if run is None:
            return
        started = run.get("execution_id")
        if started is not None:
            self._tracked.add(started)
            log.info(
                "schedule %r fired execution %s (due %s)",
                tick.name,
                started,
                due.isoformat(),
                extra={"execution_id": started},
            )
        else:
            log.info("schedule %r: tick due %s %s", tick.name, due.isoformat(), run["state"])

    # -- outcomes ------------------------------------------------------------------------------

    async def _settle(self) -> None:
        """Record how finished executions ended (exactly once, whichever replica sees it)."""
        for execution_id in await self.runs.settle():
            self._tracked.discard(execution_id)

    async def _enforce_timeouts(self, now: datetime) -> bool:
        """Cancel executions running past the timeout; ``True`` when one could not be."""
        timeout = self.settings.execution_timeout
        failed = False
        for run in await self.runs.overdue(now - timedelta(seconds=timeout)):
            try:
                await self.executions.cancel(run.workflow_name, run.execution_id)
            except (ConflictError, NotFoundError):
                continue  # it finished meanwhile: settling records how
            except FluxError:
                failed = True
                log.exception(
                    "cannot cancel timed-out execution %s",
                    run.execution_id,
                    extra={"execution_id": run.execution_id},
                )
                continue
            error = f"ran longer than scheduling.execution_timeout ({timeout:g}s); cancelled"
            await self.runs.time_out(run, now, error)
            self._tracked.discard(run.execution_id)
            log.warning(
                "scheduled execution %s timed out and was cancelled",
                run.execution_id,
                extra={"execution_id": run.execution_id},
            )
        return failed

    async def _next_delay(self, now: datetime) -> float:
        next_due, oldest = await self.runs.next_times()
        delays = [self.settings.poll_interval]
        if next_due is not None:
            delays.append((next_due - now).total_seconds())
        if oldest is not None:
            deadline = oldest + timedelta(seconds=self.settings.execution_timeout)
            delays.append((deadline - now).total_seconds())
        return max(min(delays), 0.0)

    async def load(self) -> None:
        """Track the unfinished executions started before this process (so their ends wake
        it up)."""
        self._tracked.update(await self.runs.started())
