"""Executions: create, read, resume, cancel, and the worker side (claim, checkpoint, release,
offers). Every state change is one transaction; notes tell waiters and the dispatcher after it
commits.

Each operation is a synchronous function of one transaction, run by ``Database.run_write`` /
``run_read`` (one thread hop per operation on SQLite; ``run_sync`` on PostgreSQL).
"""

from __future__ import annotations

import functools
import itertools
import operator
from binascii import b2a_base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flux.domain import (
    FINISHED_STATES,
    WORKFLOW_EVENT_STATE,
    WORKFLOW_EVENTS,
    EventType,
    ExecutionState,
    utcnow,
)
from flux.errors import ConflictError, FluxError, NotFoundError
from flux.protocol import (
    CheckpointItem,
    CheckpointRequest,
    CheckpointResponse,
    CheckpointResult,
    ErrorBody,
    EventRecord,
    ExecutionScheduledFrame,
    ExecutionStatus,
    HistoryColumns,
    ReleaseRequest,
    ReleaseResponse,
    ResourceRequest,
)
from flux.serialization import b64encode, dumps
from pydantic_core import to_json

from flux_server.db import Database, Tx
from flux_server.db.raw import Statement
from flux_server.db.tables import events, executions
from flux_server.db.types import from_epoch
from flux_server.rawjson import RawJson
from flux_server.store._common import (
    DISPATCH,
    HELD,
    OFFERABLE,
    EventRow,
    b64,
    cancel_note,
    check_records,
    event_rows,
    exec_note,
    merge_events,
    new_id,
    server_event,
)
from flux_server.store.workflows import LatestWorkflow

__all__ = ["ExecutionStore", "OfferTarget", "next_state"]

_C = executions.c
_E = events.c
_STATUS_COLUMNS = (
    _C.id,
    _C.workflow_id,
    _C.workflow_name,
    _C.workflow_version,
    _C.state,
    _C.input_view,
    _C.output_view,
    _C.created_at,
    _C.updated_at,
    _C.worker_name,
)
_EVENT_COLUMNS = (_E.id, _E.type, _E.source_id, _E.name, _E.scope, _E.time, _E.value)
_PAGE = 500
_REQUEUED = {
    "state": ExecutionState.SCHEDULED.value,
    "worker_name": None,
    "offered_to": None,
    "offered_at": None,
    "claimed_at": None,
}
"""The columns of an execution put back in the queue (with a new generation)."""


def next_state(current: ExecutionState, records: Sequence[EventRecord]) -> ExecutionState:
    """The state after a checkpoint with ``records``: that of the last workflow-level event.

    A finished execution stays finished; a claimed one that reports any event is running; a
    cancelling one stays cancelling until its run ends.
    """
    if current in FINISHED_STATES:
        return current
    last = next((r.type for r in reversed(records) if r.type.is_workflow), None)
    if last is None:
        return ExecutionState.RUNNING if records and current == ExecutionState.CLAIMED else current
    derived = WORKFLOW_EVENT_STATE[last]
    if current == ExecutionState.CANCELLING and derived == ExecutionState.RUNNING:
        return current
    return derived


@dataclass(frozen=True, slots=True)
class OfferTarget:
    """A worker connected to this server that may receive offers."""

    name: str
    capacity: int
    fits: Any
    """``fits(requests: dict | None) -> bool``."""
    gpus: int = 0
    """GPUs the worker reported: executions requesting GPUs hold them while offered or held,
    so two ``gpu=1`` runs never share a one-GPU worker."""
    push: bool = False
    """Claim for the worker at once instead of offering (its stream takes pushed claims)."""
    known: frozenset[str] = frozenset()
    """Source hashes already pushed to it: those claims come without the source."""


class ExecutionStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.wanted: Callable[[str], bool] = lambda execution_id: False
        """Whether a client of this process waits for ``execution_id`` (set by the runtime)."""
        self.on_settled: Callable[[ExecutionStatus], None] = lambda status: None
        """Called, after the commit, with the status of a wanted execution that finished or
        paused in a checkpoint."""

    # -- clients -------------------------------------------------------------------------------

    async def create(
        self, workflow: LatestWorkflow, input: Any, execution_id: str | None = None
    ) -> ExecutionStatus:
        """A new execution of ``workflow``, queued for dispatch. ``input`` is JSON.

        With ``execution_id`` (chosen by the client) an existing execution of the same
        workflow with that id is returned as it is instead: starting is idempotent.

        Raises:
            ConflictError: an execution of another workflow has ``execution_id``.
        """
        row = _new_execution(workflow, input, execution_id)

        def write(tx: Tx[sa.Connection]) -> ExecutionStatus | None:
            if execution_id is not None:
                existing = _existing(tx.conn, execution_id, workflow.name)
                if existing is not None:
                    return existing
            _INSERT_EXECUTION.execute(tx.conn, row)
            tx.notify(DISPATCH)
            return None

        try:
            existing = await self.db.run_write(write, insert_only=execution_id is None)
        except sa.exc.IntegrityError:
            if execution_id is None:
                raise
            # Another request inserted the same id meanwhile (PostgreSQL runs both at once).
            existing = await self.db.run_read(
                lambda conn: _existing(conn, execution_id, workflow.name)
            )
            if existing is None:
                raise
        return _created(row, input) if existing is None else existing

    async def create_in(self, tx: Tx, workflow: LatestWorkflow, input: Any) -> ExecutionStatus:
        """:meth:`create` inside the caller's write transaction (the scheduler claims a tick and
        creates its execution in one transaction, so a tick fires exactly once)."""
        row = _new_execution(workflow, input)
        await tx.conn.execute(sa.insert(executions).values(row))
        tx.notify(DISPATCH)
        return _created(row, input)

    async def status(
        self, execution_id: str, workflow_name: str | None = None, *, detailed: bool = False
    ) -> ExecutionStatus:
        """Raises NotFoundError for an unknown id (or one of another workflow)."""
        return await self.db.run_read(
            lambda conn: _read_status(conn, execution_id, workflow_name, detailed)
        )

    async def resume(self, workflow_name: str, execution_id: str, input: Any) -> ExecutionStatus:
        """Append WORKFLOW_RESUMED carrying ``input`` and queue the execution again.

        Raises:
            NotFoundError: unknown execution.  ConflictError: it is not PAUSED.
        """
        now = utcnow()
        blob = dumps(input, "json")

        def write(tx: Tx[sa.Connection]) -> ExecutionStatus:
            row = _locked(tx, execution_id, workflow_name)
            if row.state != ExecutionState.PAUSED:
                raise ConflictError(
                    f"execution {execution_id!r} is {row.state}; only a PAUSED execution can be "
                    "resumed",
                    status_code=409,
                    state=row.state,
                )
            resumed = server_event(
                execution_id, row.workflow_name, EventType.WORKFLOW_RESUMED, now, blob, input
            )
            tx.conn.execute(_INSERT_EVENT, resumed)
            tx.conn.execute(_BUMP, {"b_id": execution_id, **_REQUEUED, "updated_at": now})
            tx.notify(DISPATCH)
            tx.notify(exec_note(execution_id, ExecutionState.SCHEDULED))
            return _read_status(tx.conn, execution_id, None, False)

        return await self.db.run_write(write)

    async def cancel(self, workflow_name: str, execution_id: str) -> ExecutionStatus:
        """Cancel at once when no worker holds it, else ask the holder (CANCELLING).

        Raises:
            NotFoundError: unknown execution.  ConflictError: it has already finished.
        """
        now = utcnow()

        def write(tx: Tx[sa.Connection]) -> ExecutionStatus:
            row = _locked(tx, execution_id, workflow_name)
            state = ExecutionState(row.state)
            if state in FINISHED_STATES:
                raise ConflictError(
                    f"execution {execution_id!r} has already finished ({state}); nothing to cancel",
                    status_code=409,
                    state=state,
                )
            if state in HELD:
                if state != ExecutionState.CANCELLING:
                    cancelling = {"state": ExecutionState.CANCELLING.value, "updated_at": now}
                    tx.conn.execute(_UPDATE, {"b_id": execution_id, **cancelling})
                    tx.notify(exec_note(execution_id, ExecutionState.CANCELLING))
                tx.notify(cancel_note(row.worker_name, execution_id))
            else:
                _finish_cancelled(tx, execution_id, row.workflow_name, now)
            return _read_status(tx.conn, execution_id, None, False)

        return await self.db.run_write(write)

    # -- workers -------------------------------------------------------------------------------

    async def claim(self, worker: str, execution_id: str) -> dict[str, Any]:
        """Give the execution to ``worker`` with a new generation: a :class:`ClaimResponse` as
        a JSON-ready dict. The holder of a claimed execution that has not started may claim
        it again (a retry after a lost answer).

        Raises:
            NotFoundError: unknown execution.  ConflictError: not claimable now.
        """

        def write(tx: Tx[sa.Connection]) -> dict[str, Any]:
            [(_, outcome)] = _claim_batch(tx, worker, [execution_id], utcnow(), frozenset())
            if isinstance(outcome, FluxError):
                raise outcome
            return outcome

        return await self.db.run_write(write)

    async def claim_many(
        self,
        worker: str,
        execution_ids: Sequence[str],
        known_sources: Sequence[str] = (),
        columns: bool = False,
    ) -> list[dict[str, Any]]:
        """Claim several executions in one transaction, each on its own: one that is not
        claimable (or unknown) gets an ``error`` entry and does not affect the others. The
        answer is the :class:`ClaimResult` list as JSON-ready dicts; with ``columns`` each
        history is sent as :class:`HistoryColumns`."""
        known = frozenset(known_sources)

        def write(tx: Tx[sa.Connection]) -> list[dict[str, Any]]:
            ids = list(dict.fromkeys(execution_ids))
            return [
                {"execution_id": i, "claim": None, "error": outcome.to_dict()}
                if isinstance(outcome, FluxError)
                else {"execution_id": i, "claim": outcome, "error": None}
                for i, outcome in _claim_batch(tx, worker, ids, utcnow(), known, columns)
            ]

        return await self.db.run_write(write)

    async def checkpoint(
        self, worker: str, execution_id: str, request: CheckpointRequest
    ) -> CheckpointResponse:
        """Merge new events idempotently and move the state along, in one transaction.

        Raises:
            NotFoundError: unknown execution.  ConflictError: stale generation (fenced).
            UsageError: a value is not base64.
        """
        item = CheckpointItem.model_construct(
            execution_id=execution_id,
            generation=request.generation,
            events=request.events,
            output=request.output,
        )

        def write(tx: Tx[sa.Connection]) -> CheckpointResponse:
            [(_, outcome)] = _checkpoint_batch(tx, worker, [item], utcnow())
            if isinstance(outcome, FluxError):
                raise outcome
            return CheckpointResponse.model_construct(
                acknowledged=len(request.events), state=outcome
            )

        return await self.db.run_write(write)

    async def checkpoint_many(
        self, worker: str, items: Sequence[CheckpointItem]
    ) -> list[CheckpointResult]:
        """Several executions' checkpoints in one transaction, each fenced on its own.

        A stale or unknown item gets an ``error`` entry and changes nothing; the others are
        stored. This is what lets a worker running many executions pay one round trip and
        one commit for all the task completions that happened meanwhile. On PostgreSQL a
        batch of progress only (task events of held executions) is one statement.
        """
        original = items

        def write(tx: Tx[sa.Connection]) -> tuple[list[CheckpointResult], list[ExecutionStatus]]:
            results = checkpoint_all(tx)
            # Executions that just settled and that a client here waits for: their status
            # read now, in this transaction, saves each waiter a read of its own.
            wanted = self.wanted
            ids = [
                r.execution_id
                for r in results
                if r.state is not None and r.state in _SETTLED and wanted(r.execution_id)
            ]
            if not ids:
                return results, []
            rows = _READ_SETTLED.execute(tx.conn, {"ids": ids})
            return results, [_status(row, None) for row in rows]

        def checkpoint_all(tx: Tx[sa.Connection]) -> list[CheckpointResult]:
            now = utcnow()
            if len({item.execution_id for item in items}) == len(items):
                outcomes = _checkpoint_batch(tx, worker, items, now)
            else:  # one execution twice: each item in turn, in order
                outcomes = [o for item in items for o in _checkpoint_batch(tx, worker, [item], now)]
            return [
                CheckpointResult(execution_id=item.execution_id, error=ErrorBody(**o.to_dict()))
                if isinstance(o, FluxError)
                else CheckpointResult.model_construct(
                    execution_id=item.execution_id,
                    acknowledged=len(item.events),
                    state=o,
                    error=None,
                )
                for item, o in outcomes
            ]

        moved: dict[str, CheckpointResult] = {}
        if self.db.dialect == "postgresql" and _straight(items):
            wanted = self.wanted
            moved, settled = await self.db.run_statement(
                lambda tx: _checkpoint_statement(tx, worker, items, utcnow(), wanted)
            )
            for status in settled:  # committed: hand them to the waiters
                self.on_settled(status)
            if len(moved) == len(items):
                return [moved[item.execution_id] for item in items]
            items = [item for item in items if item.execution_id not in moved]
        results, settled = await self.db.run_write(write)
        for status in settled:  # committed: hand them to the waiters
            self.on_settled(status)
        if moved:  # in request order
            rest = iter(results)
            return [moved.get(i.execution_id) or next(rest) for i in original]
        return results

    async def release(
        self, worker: str, execution_id: str, request: ReleaseRequest
    ) -> ReleaseResponse:
        """Put a held execution back in the queue (a cancelling one is cancelled instead).

        Raises:
            NotFoundError: unknown execution.  ConflictError: stale generation (fenced).
        """
        now = utcnow()

        def write(tx: Tx[sa.Connection]) -> ReleaseResponse:
            row = _fenced(tx, worker, execution_id, request.generation)
            state = ExecutionState(row.state)
            if state in (ExecutionState.CLAIMED, ExecutionState.RUNNING):
                tx.conn.execute(_BUMP, {"b_id": execution_id, **_REQUEUED, "updated_at": now})
                state = ExecutionState.SCHEDULED
                tx.notify(DISPATCH)
            elif state == ExecutionState.CANCELLING:
                _finish_cancelled(tx, execution_id, row.workflow_name, now)
                state = ExecutionState.CANCELLED
            return ReleaseResponse(state=state)

        return await self.db.run_write(write)

    async def held_by(
        self, worker: str, running: Sequence[str] | None = None, grace: float = 0.0
    ) -> tuple[list[str], list[str]]:
        """(held execution ids, those of them being cancelled).

        With ``running`` (what the worker reports it runs), held executions missing from it that
        saw no change for ``grace`` seconds are taken back: claimed or running ones go back to
        the queue with a new generation, cancelling ones are cancelled.
        """
        if running is None:
            rows = await self.db.run_read(
                lambda conn: conn.execute(_HELD_BY, {"b_worker": worker}).all()
            )
        else:
            rows = await self.db.run_write(
                lambda tx: _reconcile(tx, worker, set(running), grace, utcnow())
            )
        held = [r.id for r in rows]
        return held, [r.id for r in rows if r.state == ExecutionState.CANCELLING]

    async def holds(self, worker: str, execution_id: str) -> bool:
        params = {"b_id": execution_id, "b_worker": worker}
        return await self.db.run_read(lambda conn: conn.execute(_HOLDS, params).first() is not None)

    # -- dispatch ------------------------------------------------------------------------------

    async def offer(
        self, targets: Sequence[OfferTarget], claim_timeout: float
    ) -> list[tuple[str, ExecutionScheduledFrame | dict[str, Any]]]:
        """Pick queued executions for connected workers and record the offers.

        Each execution goes to the least-loaded worker whose resources fit its requests and
        that has free capacity; one that fits nowhere is skipped without holding up the rest.
        An offer older than ``claim_timeout`` counts as withdrawn and is made again. For a
        ``push`` target the execution is claimed in the same transaction instead, and its
        entry is the :class:`ClaimResponse` as a dict of wire values (history column-wise).
        """
        if not targets:
            return []
        return await self.db.run_write(lambda tx: _offer(tx, targets, claim_timeout))

    async def withdraw_offers(self, worker: str) -> None:
        """Forget unclaimed offers to ``worker`` (its stream closed) so others get them now."""

        def write(tx: Tx[sa.Connection]) -> None:
            result = tx.conn.execute(_WITHDRAW, {"b_worker": worker})
            if result.rowcount:
                tx.notify(DISPATCH)

        await self.db.run_write(write)


# -- the operations, one transaction each ---------------------------------------------------------
#
# Statements are built once: constructing a SQLAlchemy statement costs several times more than
# executing a prebuilt one. Updates without ``.values()`` take their SET columns from the
# parameters (typed by the columns); ``b_``-prefixed parameters are the WHERE clause's.

_HELD = [s.value for s in HELD]
_SETTLED = frozenset({*FINISHED_STATES, ExecutionState.PAUSED})
_OFFERABLE = [s.value for s in OFFERABLE]


def _bind(name: str, column: sa.ColumnElement[Any]) -> sa.BindParameter[Any]:
    return sa.bindparam(name, type_=column.type)


_NEW_EXECUTION_COLUMNS = (
    "id",
    "workflow_id",
    "workflow_name",
    "workflow_version",
    "state",
    "input",
    "input_view",
    "requests",
    "generation",
    "created_at",
    "updated_at",
)
"""What :func:`_new_execution` sets."""
_INSERT_EXECUTION = Statement(
    f"INSERT INTO executions ({', '.join(_NEW_EXECUTION_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _NEW_EXECUTION_COLUMNS)})",
    times=("created_at", "updated_at"),
    json=("input_view", "requests"),
)
_INSERT_EVENT = sa.insert(events)
_STATUS_NAMES = [c.name for c in _STATUS_COLUMNS]
_READ_SETTLED = Statement(
    f"SELECT {', '.join(_STATUS_NAMES)} FROM executions WHERE id IN (:ids)",
    lists=("ids",),
    columns=_STATUS_NAMES,
    time_columns=("created_at", "updated_at"),
    json_columns=("input_view", "output_view"),
)
_READ_STATUS = sa.select(*_STATUS_COLUMNS).where(_C.id == sa.bindparam("b_id"))
_READ_HISTORY_VIEWS = (
    sa.select(*_EVENT_COLUMNS, _E.view)
    .where(_E.execution_id == sa.bindparam("b_id"))
    .order_by(_E.seq)
)
_READ_ROW = sa.select(_C.state, _C.workflow_name, _C.worker_name, _C.generation).where(
    _C.id == sa.bindparam("b_id")
)
_READ_ROW_LOCKED = _READ_ROW.with_for_update()
_READ_HOLDER = sa.select(_C.state, _C.worker_name).where(_C.id == sa.bindparam("b_id"))
_UPDATE = sa.update(executions).where(_C.id == sa.bindparam("b_id"))
_BUMP = _UPDATE.values(generation=_C.generation + 1)


def _quoted(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


# A claim of held-or-queued executions: the new generation and what the claim answer needs.
_CLAIM_MANY = Statement(
    f"""
UPDATE executions SET state = 'CLAIMED', worker_name = :worker, generation = generation + 1,
    claimed_at = :now, offered_to = NULL, offered_at = NULL, updated_at = :now
WHERE id IN (:ids) AND (state IN ({_quoted(_OFFERABLE)})
    OR (state = 'CLAIMED' AND worker_name = :worker))
RETURNING id, generation, workflow_id, workflow_name, workflow_version, input, requests,
    (SELECT source_hash FROM workflows w WHERE w.id = executions.workflow_id),
    EXISTS (SELECT 1 FROM events e WHERE e.execution_id = executions.id)
""",
    times=("now",),
    lists=("ids",),
    columns=(
        *("id", "generation", "workflow_id", "workflow_name", "workflow_version"),
        *("input", "requests", "source_hash", "has_history"),
    ),
    json_columns=("requests",),
)
# Histories as the driver returns them (times as epoch seconds or datetimes, values as bytes):
# the claim answer converts them once, straight to wire values.
_READ_HISTORIES_RAW = Statement(
    "SELECT execution_id, id, type, source_id, name, scope, time, value FROM events "
    "WHERE execution_id IN (:ids) ORDER BY execution_id, seq",
    lists=("ids",),
    columns=("execution_id", "id", "type", "source_id", "name", "scope", "time", "value"),
    plain=True,
)
# On PostgreSQL a history sent column by column is built by the database, as one JSON text
# per execution (spliced into the answer as it is, see flux_server.rawjson): converting,
# encoding and writing out row by row cost the server more than three times what reading
# the rows did.
#
# The aggregates read the rows in the order of an ordered subquery, which PostgreSQL only
# "usually" keeps; so the statement also compares the seqs in the order the aggregates saw
# them with the same seqs sorted (``in_order``), and the rare history that fails the check is
# built again by _READ_HISTORY_COLUMNS_SORTED, where every aggregate sorts by seq itself.
# One sort of integers instead of seven of text: a 4,000-task history took 19-27 ms instead
# of 26-41 (PostgreSQL 15; version 16 sorts once for all of them anyway).
#
# PostgreSQL's base64 breaks lines after 76 characters (57 bytes), which JSON must not carry:
# only longer values pay for taking the breaks out (most values are a few bytes; the
# translate of every value was 15 % of the statement).
_COLUMNS_SQL = """
SELECT execution_id, json_build_object(
    'ids', json_agg(id{order}),
    'types', json_agg(type{order}),
    'source_ids', json_agg(source_id{order}),
    'names', json_agg(name{order}),
    'scopes', json_agg(scope{order}),
    'times', json_agg(extract(epoch FROM time){order}),
    'values', json_agg(CASE WHEN octet_length(value) <= 56 THEN encode(value, 'base64')
        ELSE translate(encode(value, 'base64'), E'\\n', '') END{order})
)::text, {check}
FROM (SELECT * FROM events WHERE execution_id IN (:ids) ORDER BY execution_id, seq) AS e
GROUP BY execution_id
"""
_READ_HISTORY_COLUMNS = Statement(
    "",
    postgresql=_COLUMNS_SQL.format(
        order="", check="array_agg(seq) = array_agg(seq ORDER BY seq) AS in_order"
    ),
    lists=("ids",),
    columns=("execution_id", "columns", "in_order"),
    plain=True,
)
_READ_HISTORY_COLUMNS_SORTED = Statement(
    "",
    postgresql=_COLUMNS_SQL.format(order=" ORDER BY seq", check="true"),
    lists=("ids",),
    columns=("execution_id", "columns", "in_order"),
    plain=True,
)
_READ_SOURCES = Statement(
    "SELECT id, source FROM workflows WHERE id IN (:ids)",
    lists=("ids",),
    columns=("id", "source"),
)
_OFFER = sa.update(executions).where(_C.id == sa.bindparam("b_id"))
_WITHDRAW = (
    sa.update(executions)
    .where(_C.offered_to == sa.bindparam("b_worker"), _C.state == ExecutionState.SCHEDULED.value)
    .values(offered_to=None, offered_at=None)
)
_HELD_BY = sa.select(_C.id, _C.state, _C.workflow_name, _C.updated_at).where(
    _C.worker_name == sa.bindparam("b_worker"), _C.state.in_(_HELD)
)
_HOLDS = sa.select(_C.id).where(
    _C.id == sa.bindparam("b_id"), _C.worker_name == sa.bindparam("b_worker"), _C.state.in_(_HELD)
)
_LOAD_SQL = f"""
SELECT worker_name, count(*) FROM executions
WHERE worker_name IN (:names) AND state IN ({_quoted(_HELD)}) GROUP BY worker_name
UNION ALL
SELECT offered_to, count(*) FROM executions
WHERE offered_to IN (:names) AND state = 'SCHEDULED' AND offered_at >= :cutoff
GROUP BY offered_to
"""
_LOAD = Statement(
    _LOAD_SQL,
    times=("cutoff",),
    lists=("names",),
    columns=("worker", "n"),
)
_GPU_USERS = sa.union_all(
    sa.select(_C.worker_name.label("w"), _C.requests).where(
        _C.worker_name.in_(sa.bindparam("b_names", expanding=True)),
        _C.state.in_(_HELD),
        _C.requests.is_not(None),
    ),
    sa.select(_C.offered_to.label("w"), _C.requests).where(
        _C.offered_to.in_(sa.bindparam("b_names", expanding=True)),
        _C.state == ExecutionState.SCHEDULED.value,
        _C.offered_at >= _bind("b_cutoff", _C.offered_at),
        _C.requests.is_not(None),
    ),
)
_QUEUED_SQL = f"""
SELECT id, workflow_name, workflow_version, requests, offered_to, created_at FROM executions
WHERE state IN ({_quoted(_OFFERABLE)}) AND (offered_to IS NULL OR offered_at < :cutoff) {{after}}
ORDER BY created_at, id LIMIT {_PAGE}
"""
_AFTER = "AND (created_at, id) > (:created_at, :after_id)"


def _queued_statement(after: bool) -> Statement:
    sql = _QUEUED_SQL.format(after=_AFTER if after else "")
    return Statement(
        sql,
        # Another replica offering at the same moment skips these rows instead of waiting.
        postgresql=sql + "FOR UPDATE SKIP LOCKED",
        times=("cutoff", "created_at") if after else ("cutoff",),
        columns=("id", "workflow_name", "workflow_version", "requests", "offered_to", "created_at"),
        time_columns=("created_at",),
        json_columns=("requests",),
    )


_QUEUED = _queued_statement(after=False)
_QUEUED_AFTER = _queued_statement(after=True)


def _existing(conn: sa.Connection, execution_id: str, workflow_name: str) -> ExecutionStatus | None:
    """The execution with a client-chosen id, if there is one (of ``workflow_name``).

    Raises:
        ConflictError: that id belongs to an execution of another workflow.
    """
    try:
        status = _read_status(conn, execution_id, None, False)
    except NotFoundError:
        return None
    if status.workflow_name != workflow_name:
        raise ConflictError(
            f"execution id {execution_id!r} is taken by an execution of workflow "
            f"{status.workflow_name!r}",
            status_code=409,
        )
    return status


def _new_execution(
    workflow: LatestWorkflow, input: Any, execution_id: str | None = None
) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": execution_id or new_id(),
        "workflow_id": workflow.id,
        "workflow_name": workflow.name,
        "workflow_version": workflow.version,
        "state": ExecutionState.SCHEDULED.value,
        "input": dumps(input, "json"),
        "input_view": input,
        "requests": workflow.requests,
        "generation": 0,
        "created_at": now,
        "updated_at": now,
    }


def _created(row: dict[str, Any], input: Any) -> ExecutionStatus:
    return ExecutionStatus.model_construct(
        execution_id=row["id"],
        workflow_id=row["workflow_id"],
        workflow_name=row["workflow_name"],
        workflow_version=row["workflow_version"],
        state=ExecutionState.SCHEDULED,
        input=input,
        output=None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        worker=None,
        events=None,
    )


def _read_status(
    conn: sa.Connection, execution_id: str, workflow_name: str | None, detailed: bool
) -> ExecutionStatus:
    row = conn.execute(_READ_STATUS, {"b_id": execution_id}).first()
    if row is None or (workflow_name is not None and row.workflow_name != workflow_name):
        raise _not_found(execution_id, workflow_name)
    records = None
    if detailed:
        rows = conn.execute(_READ_HISTORY_VIEWS, {"b_id": execution_id})
        records = [_record(r, r.view) for r in rows]
    return _status(row, records)


def _claim_batch(
    tx: Tx[sa.Connection],
    worker: str,
    ids: list[str],
    now: datetime,
    known: frozenset[str],
    columns: bool = False,
) -> list[tuple[str, dict[str, Any] | ConflictError | NotFoundError]]:
    """Give distinct executions to ``worker`` with a new generation, in a few statements for
    all of them (one conditional update; a history read when one has events, a source read
    when the worker lacks one). Per id, in
    order: the :class:`ClaimResponse` as a dict of wire values (the history goes from rows to
    JSON values without a model per event; sources whose hash is in ``known`` are sent
    empty), or why it cannot be claimed. The holder of a claimed execution that has not
    started may claim it again (a retry after a lost answer)."""
    conn = tx.conn
    params = {"ids": ids, "worker": worker, "now": now}
    claimed = {r.id: r for r in _CLAIM_MANY.execute(conn, params)}
    # The claim's RETURNING says which executions have a history and each source's hash:
    # a new execution (no events yet) and a source the worker has cost no statement.
    with_history = [r.id for r in claimed.values() if r.has_history]
    histories: dict[str, Any] = {}
    if with_history and columns and conn.dialect.name == "postgresql":
        rows = _READ_HISTORY_COLUMNS.execute(conn, {"ids": with_history})
        unsure = [execution_id for execution_id, _, in_order in rows if not in_order]
        if unsure:
            rows += _READ_HISTORY_COLUMNS_SORTED.execute(conn, {"ids": unsure})
        for execution_id, text, in_order in rows:
            if in_order:  # an unsure one is taken from the sorted read
                histories[execution_id] = RawJson(text)
    elif with_history:
        rows = _READ_HISTORIES_RAW.execute(conn, {"ids": with_history})
        for execution_id, group in itertools.groupby(rows, operator.itemgetter(0)):
            if columns:
                histories[execution_id] = _wire_columns(list(group))
            else:
                histories[execution_id] = [_wire_event(r) for r in group]
    sources: dict[str, str] = {}
    unknown = list({r.workflow_id for r in claimed.values() if r.source_hash not in known})
    if unknown:
        for found in _READ_SOURCES.execute(conn, {"ids": unknown}):
            sources[found.id] = found.source
    outcomes: list[tuple[str, dict[str, Any] | ConflictError | NotFoundError]] = []
    for execution_id in ids:
        row = claimed.get(execution_id)
        if row is None:
            outcomes.append((execution_id, _claim_refused(conn, execution_id)))
            continue
        source = sources.get(row.workflow_id, "")  # "" when the worker has it
        history = histories.get(execution_id)
        if columns:
            claim = _claim_answer(row, source, [])
            claim["history_columns"] = history or _NO_COLUMNS
        else:
            claim = _claim_answer(row, source, history or [])
        outcomes.append((execution_id, claim))
    return outcomes


def _claim_refused(conn: sa.Connection, execution_id: str) -> ConflictError | NotFoundError:
    """Why ``execution_id`` could not be claimed: it does not exist, or is not claimable."""
    current = conn.execute(_READ_HOLDER, {"b_id": execution_id}).first()
    if current is None:
        return _not_found(execution_id)
    holder = f" by worker {current.worker_name!r}" if current.state in HELD else ""
    return ConflictError(
        f"execution {execution_id!r} cannot be claimed: it is {current.state}{holder}",
        status_code=409,
        state=current.state,
    )


def _claim_answer(row: Any, source: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "execution_id": row.id,
        "generation": row.generation,
        "workflow_id": row.workflow_id,
        "workflow_name": row.workflow_name,
        "workflow_version": row.workflow_version,
        "source": source,
        "source_hash": row.source_hash,
        "input": b64encode(row.input),
        "events": events,
        "state": ExecutionState.CLAIMED.value,
        "requests": row.requests or None,
    }


def _wire_event(row: tuple[Any, ...]) -> dict[str, Any]:
    """A history row (``_READ_HISTORIES_RAW``'s columns) as an EventRecord's wire values.
    Views are for display; the worker replays from values, so they are left out."""
    _, event_id, type_, source_id, name, scope, time, value = row
    return {
        "id": event_id,
        "type": type_,
        "source_id": source_id,
        "name": name,
        "scope": scope,
        "time": _wire_time(time),
        "value": None if value is None else b64encode(bytes(value)),
    }


_NO_COLUMNS: dict[str, list[Any]] = {k: [] for k in HistoryColumns.model_fields}


def _wire_columns(rows: list[Any]) -> dict[str, Any]:
    """History rows (``_READ_HISTORIES_RAW``'s columns) as :class:`HistoryColumns` values."""
    _, ids, types, source_ids, names, scopes, times, values = zip(*rows, strict=True)
    return {
        "ids": ids,
        "types": types,
        "source_ids": source_ids,
        "names": names,
        "scopes": scopes,
        "times": [t if type(t) is float else _wire_time(t).timestamp() for t in times],
        "values": [None if v is None else b2a_base64(v, newline=False).decode() for v in values],
    }


def _wire_time(value: Any) -> datetime:
    """An event time as the driver returns it (epoch seconds or a datetime), aware UTC."""
    if isinstance(value, int | float):
        return from_epoch(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _checkpoint_batch(
    tx: Tx[sa.Connection], worker: str, items: Sequence[CheckpointItem], now: datetime
) -> list[tuple[CheckpointItem, ExecutionState | ConflictError | NotFoundError]]:
    """Merge the new events of items of distinct executions idempotently and move each state
    along, in a few statements for all of them (one read, one insert, one update per shape of
    change). Per item, in order: the new state, or why it was refused (unknown execution,
    stale generation); a refused item changes nothing.

    Raises:
        UsageError: a value is not base64 (nothing of the batch is stored).
    """
    conn = tx.conn
    ids = [i.execution_id for i in items]
    rows = {r.id: r for r in _HELD_ROWS.execute(conn, {"ids": ids})}
    outcomes: list[tuple[CheckpointItem, ExecutionState | ConflictError | NotFoundError]] = []
    inserts: list[EventRow] = []
    updates: dict[frozenset[str], list[dict[str, Any]]] = {}
    cancelled: list[Any] = []
    for item in items:
        execution_id = item.execution_id
        row = rows.get(execution_id)
        if row is None or row.generation != item.generation or row.worker_name != worker:
            refused = (
                _not_found(execution_id)
                if row is None
                else _stale(execution_id, worker, item.generation, row.generation)
            )
            outcomes.append((item, refused))
            continue
        inserts += event_rows(execution_id, item.events)
        state = ExecutionState(row.state)
        new = next_state(state, item.events)
        values: dict[str, Any] = {}
        if new == ExecutionState.PAUSED and state == ExecutionState.CANCELLING:
            cancelled.append(row)  # it paused instead of unwinding: it is cancelled
            new = ExecutionState.CANCELLED
        elif new != state:
            values["state"] = new.value
            if new in FINISHED_STATES:
                values.update(_output(item))
        if values or item.events:
            params = {"id": execution_id, "updated_at": now, **values}
            updates.setdefault(frozenset(params), []).append(params)
        if new != state:
            tx.notify(exec_note(execution_id, new))
            if new in FINISHED_STATES or new == ExecutionState.PAUSED:
                tx.notify(DISPATCH)
        outcomes.append((item, new))
    merge_events(tx, inserts)
    for row in cancelled:
        _finish_cancelled(tx, row.id, row.workflow_name, now)
    for shape, same_shape in updates.items():
        if shape == _PROGRESS:  # events only: one statement for all
            _TOUCH.execute(conn, {"ids": [p["id"] for p in same_shape], "updated_at": now})
        else:
            _moved(shape).executemany(conn, same_shape)
    return outcomes


# A checkpoint's statements (see ``merge_events`` for its events). On PostgreSQL the read
# locks the rows, in one order for every transaction: no deadlock.
_HELD_ROWS = Statement(
    "SELECT id, state, workflow_name, worker_name, generation FROM executions "
    "WHERE id IN (:ids) ORDER BY id",
    postgresql="SELECT id, state, workflow_name, worker_name, generation FROM executions "
    "WHERE id IN (:ids) ORDER BY id FOR UPDATE",
    lists=("ids",),
    columns=("id", "state", "workflow_name", "worker_name", "generation"),
)
_PROGRESS = frozenset({"id", "updated_at"})
_TOUCH = Statement(
    "UPDATE executions SET updated_at = :updated_at WHERE id IN (:ids)",
    times=("updated_at",),
    lists=("ids",),
)


@functools.cache
def _moved(shape: frozenset[str]) -> Statement:
    """The update of an execution whose checkpoint set the columns in ``shape`` (besides
    ``id``: ``updated_at``, and ``state``, ``output``, ``output_view`` as it changed)."""
    columns = sorted(shape - {"id"})
    return Statement(
        f"UPDATE executions SET {', '.join(f'{c} = :{c}' for c in columns)} WHERE id = :id",
        times=("updated_at",),
        json=[c for c in columns if c == "output_view"],
    )


def _straight(items: Sequence[CheckpointItem]) -> bool:
    """Whether every item adds events to a distinct execution without the cases only the full
    checkpoint handles (no events; several items of one execution)."""
    return len({i.execution_id for i in items}) == len(items) and all(i.events for i in items)


# A checkpoint batch on PostgreSQL as one statement (data-modifying CTEs over one JSON
# parameter: the items, with their event records as they came): lock the executions this
# worker holds with the sent generations, move their state and output as the worker's events
# say and stamp updated_at, and insert the events of those (and only those) in the order
# sent. Each level of the JSON is parsed once, by json_to_recordset into typed columns (a
# ``->>`` per field would parse the ``json`` text again each time: 15-20 % more of
# PostgreSQL's CPU per batch). An item changing the state applies only to a
# CLAIMED or RUNNING execution (a cancelling one that pauses must end cancelled instead);
# events alone also to a CANCELLING one, which stays so. What the statement did not move
# (stale, unknown, finished, cancelling) goes through the full checkpoint after it.
_CHECKPOINT_SQL = """
WITH sent AS (
    SELECT * FROM json_to_recordset(CAST(:items AS json)) AS s(
        id text, generation int, state text, finished bool, output text, output_view json)
), held AS (
    SELECT x.id, x.state FROM executions x JOIN sent ON x.id = sent.id
    WHERE x.id = ANY(CAST(:ids AS text[]))
        AND x.generation = sent.generation AND x.worker_name = :worker
        -- implied by the next condition, but in the form that lets the planner use the
        -- partial index of held executions (revision 0003) should it pick that index
        AND x.state IN ({held})
        AND (x.state IN ('CLAIMED', 'RUNNING')
             OR (sent.state IS NULL AND x.state = 'CANCELLING'))
    ORDER BY x.id
    FOR UPDATE OF x
), moved AS (
    UPDATE executions x
    SET updated_at = :now,
        state = COALESCE(
            sent.state, CASE WHEN held.state = 'CLAIMED' THEN 'RUNNING' ELSE held.state END),
        output = CASE WHEN sent.finished THEN decode(sent.output, 'base64') ELSE x.output END,
        output_view = CASE WHEN sent.finished THEN sent.output_view ELSE x.output_view END
    FROM held JOIN sent ON sent.id = held.id
    WHERE x.id = held.id AND x.id = ANY(CAST(:ids AS text[]))
    RETURNING x.id, held.state AS was, x.state, x.workflow_id, x.workflow_name,
        x.workflow_version, x.input_view, x.output_view, x.created_at, x.updated_at,
        x.worker_name
), added AS (
    INSERT INTO events (id, execution_id, type, source_id, name, scope, time, value, view)
    SELECT e.id, i.id, e.type, e.source_id, e.name, e.scope, e.time,
        decode(e.value, 'base64'), e.view
    FROM ROWS FROM (json_to_recordset(CAST(:items AS json)) AS (id text, events json))
        WITH ORDINALITY AS i(id, events, k)
    CROSS JOIN LATERAL ROWS FROM (json_to_recordset(i.events) AS (
            id text, type text, source_id text, name text, scope text, time timestamptz,
            value text, view json))
        WITH ORDINALITY AS e(id, type, source_id, name, scope, time, value, view, j)
    WHERE i.id IN (SELECT id FROM moved)
    ORDER BY i.k, e.j
    ON CONFLICT (id) DO NOTHING
)
SELECT id, was, state, workflow_id, workflow_name, workflow_version,
    -- the views go into the status of a settled execution only: not parsed for the others
    CASE WHEN state IN ({settled}) THEN input_view END,
    CASE WHEN state IN ({settled}) THEN output_view END,
    created_at, updated_at, worker_name
FROM moved
"""
_CHECKPOINT_PG = Statement(
    _CHECKPOINT_SQL.format(settled=_quoted(sorted(_SETTLED)), held=_quoted(_HELD)),
    lists=("ids",),
    columns=(
        *("id", "was", "state", "workflow_id", "workflow_name", "workflow_version"),
        *("input_view", "output_view", "created_at", "updated_at", "worker_name"),
    ),
    time_columns=("created_at", "updated_at"),
)


async def _checkpoint_statement(
    tx: Tx[Any],
    worker: str,
    items: Sequence[CheckpointItem],
    now: datetime,
    wanted: Callable[[str], bool],
) -> tuple[dict[str, CheckpointResult], list[ExecutionStatus]]:
    """:data:`_CHECKPOINT_PG` for ``items`` (see :func:`_straight`): the results of the items
    it stored, by execution id, and the statuses of those that settled and are ``wanted``.

    Raises:
        UsageError: a value is not base64, or a text field holds a NUL character.
    """
    sent: list[dict[str, Any]] = []
    for item in items:
        check_records(item.events)
        last = next((r for r in reversed(item.events) if r.type in WORKFLOW_EVENTS), None)
        state = None if last is None else WORKFLOW_EVENT_STATE[last.type]
        entry = {
            "id": item.execution_id,
            "generation": item.generation,
            "state": state,
            "events": item.events,  # serialized as they came
        }
        if state in FINISHED_STATES:
            output = item.output if item.output is not None else last
            assert output is not None
            b64(output.value, "the output value")  # validation
            entry.update(finished=True, output=output.value, output_view=output.view)
        sent.append(entry)
    params = {
        "items": to_json(sent).decode(),
        "ids": [item.execution_id for item in items],  # the primary key: an index scan
        "worker": worker,
        "now": now,
    }
    counts = {item.execution_id: len(item.events) for item in items}
    results: dict[str, CheckpointResult] = {}
    settled: list[ExecutionStatus] = []
    for row in await _CHECKPOINT_PG.execute_async(tx.conn, params):
        state = ExecutionState(row.state)
        if state.value != row.was:
            tx.notify(exec_note(row.id, state))
            if state in _SETTLED:
                tx.notify(DISPATCH)
                if wanted(row.id):
                    settled.append(_status(row, None))
        results[row.id] = CheckpointResult.model_construct(
            execution_id=row.id, acknowledged=counts[row.id], state=state, error=None
        )
    return results, settled


def _stale(execution_id: str, worker: str, generation: int, current: int) -> ConflictError:
    return ConflictError(
        f"execution {execution_id!r} is no longer held by worker {worker!r} with generation "
        f"{generation} (current generation {current}); abandon it",
        status_code=409,
        generation=current,
    )


def _reconcile(
    tx: Tx[sa.Connection], worker: str, running: set[str], grace: float, now: datetime
) -> list[Any]:
    idle_since = now - timedelta(seconds=grace)
    held = []
    for row in tx.conn.execute(_HELD_BY, {"b_worker": worker}).all():
        if row.id in running or row.updated_at > idle_since:
            held.append(row)
        elif row.state == ExecutionState.CANCELLING:
            _finish_cancelled(tx, row.id, row.workflow_name, now)
        else:
            tx.conn.execute(_BUMP, {"b_id": row.id, **_REQUEUED, "updated_at": now})
            tx.notify(exec_note(row.id, ExecutionState.SCHEDULED))
            tx.notify(DISPATCH)
    return held


def _offer(
    tx: Tx[sa.Connection], targets: Sequence[OfferTarget], claim_timeout: float
) -> list[tuple[str, ExecutionScheduledFrame | dict[str, Any]]]:
    now = utcnow()
    cutoff = now - timedelta(seconds=claim_timeout)
    load = _load(tx.conn, [t.name for t in targets], cutoff)
    free = {t.name: t.capacity - load.get(t.name, 0) for t in targets}
    if not any(n > 0 for n in free.values()):
        return []
    capacity = {t.name: t.capacity for t in targets}
    gpus_free: dict[str, int] | None = None  # read only once a queued row asks for GPUs
    offers: list[tuple[str, ExecutionScheduledFrame]] = []
    after: tuple[datetime, str] | None = None
    while any(n > 0 for n in free.values()):
        page = _queued(tx.conn, cutoff, after)
        for row in page:
            fitting = [t.name for t in targets if free[t.name] > 0 and t.fits(row.requests)]
            need = _gpus_needed(row.requests)
            if need and fitting:
                if gpus_free is None:
                    gpus_free = _gpus_free(tx.conn, targets, cutoff)
                fitting = [n for n in fitting if gpus_free[n] >= need]
            if not fitting:
                continue
            # Least loaded first; on a tie, not the worker that let this offer lapse.
            lapsed = row.offered_to
            name = min(fitting, key=lambda n: ((capacity[n] - free[n]) / capacity[n], n == lapsed))
            free[name] -= 1
            if need and gpus_free is not None:
                gpus_free[name] -= need
            frame = ExecutionScheduledFrame.model_construct(
                execution_id=row.id,
                workflow_name=row.workflow_name,
                workflow_version=row.workflow_version,
            )
            offers.append((name, frame))
            if not any(n > 0 for n in free.values()):
                break
        if len(page) < _PAGE:
            break
        after = (page[-1].created_at, page[-1].id)
    pushed = {t.name: t.known for t in targets if t.push}
    offered = [(w, f) for w, f in offers if w not in pushed]
    if offered:
        tx.conn.execute(
            _OFFER,
            [{"b_id": f.execution_id, "offered_to": w, "offered_at": now} for w, f in offered],
        )
    answer: list[tuple[str, ExecutionScheduledFrame | dict[str, Any]]] = list(offered)
    for worker, known in pushed.items():
        ids = [f.execution_id for w, f in offers if w == worker]
        if ids:  # rows this transaction picked and locked: each claim succeeds
            for _, claim in _claim_batch(tx, worker, ids, now, known, columns=True):
                if isinstance(claim, dict):
                    answer.append((worker, claim))
    return answer


def _gpus_needed(requests: dict[str, Any] | None) -> int:
    # Stored requests were validated when the workflow was registered: no validation here.
    return ResourceRequest.model_construct(**requests).gpu_count() if requests else 0


def _gpus_free(
    conn: sa.Connection, targets: Sequence[OfferTarget], cutoff: datetime
) -> dict[str, int]:
    """GPUs each worker has that no execution held by it, or recently offered to it, asked for."""
    free = {t.name: t.gpus for t in targets}
    params = {"b_names": list(free), "b_cutoff": cutoff}
    for worker, requests in conn.execute(_GPU_USERS, params):
        if worker in free:
            free[worker] -= _gpus_needed(requests)
    return free


def _load(conn: sa.Connection, names: list[str], cutoff: datetime) -> dict[str, int]:
    """What each worker holds or has been offered (recently), from the database: the truth
    shared by every replica."""
    load: dict[str, int] = {}
    for w, n in _LOAD.execute(conn, {"names": names, "cutoff": cutoff}):
        load[w] = load.get(w, 0) + n
    return load


def _queued(conn: sa.Connection, cutoff: datetime, after: tuple[datetime, str] | None) -> list[Any]:
    if after is None:
        return _QUEUED.execute(conn, {"cutoff": cutoff})
    params = {"cutoff": cutoff, "created_at": after[0], "after_id": after[1]}
    return _QUEUED_AFTER.execute(conn, params)


def _locked(tx: Tx[sa.Connection], execution_id: str, workflow_name: str | None = None) -> Any:
    query = _READ_ROW if tx.conn.dialect.name == "sqlite" else _READ_ROW_LOCKED
    row = tx.conn.execute(query, {"b_id": execution_id}).first()
    if row is None or (workflow_name is not None and row.workflow_name != workflow_name):
        raise _not_found(execution_id, workflow_name)
    return row


def _fenced(tx: Tx[sa.Connection], worker: str, execution_id: str, generation: int) -> Any:
    row = _locked(tx, execution_id)
    if row.generation != generation or row.worker_name != worker:
        raise _stale(execution_id, worker, generation, row.generation)
    return row


def _finish_cancelled(
    tx: Tx[sa.Connection], execution_id: str, workflow_name: str, now: datetime
) -> None:
    tx.conn.execute(
        _INSERT_EVENT,
        server_event(execution_id, workflow_name, EventType.WORKFLOW_CANCELLED, now, None, None),
    )
    tx.conn.execute(
        _BUMP,
        {
            "b_id": execution_id,
            "state": ExecutionState.CANCELLED.value,
            "offered_to": None,
            "offered_at": None,
            "updated_at": now,
        },
    )
    tx.notify(exec_note(execution_id, ExecutionState.CANCELLED))
    tx.notify(DISPATCH)


def _not_found(execution_id: str, workflow_name: str | None = None) -> NotFoundError:
    of = f" of workflow {workflow_name!r}" if workflow_name is not None else ""
    return NotFoundError(
        f"no execution {execution_id!r}{of}; check the id (see `flux workflow status`)",
        status_code=404,
        execution_id=execution_id,
    )


def _record(row: Any, view: Any) -> EventRecord:
    return EventRecord.model_construct(
        id=row.id,
        type=EventType(row.type),
        source_id=row.source_id,
        name=row.name,
        scope=row.scope,
        time=row.time,
        value=b64encode(row.value),
        view=view,
    )


def _status(row: Any, records: list[EventRecord] | None) -> ExecutionStatus:
    return ExecutionStatus.model_construct(
        execution_id=row.id,
        workflow_id=row.workflow_id,
        workflow_name=row.workflow_name,
        workflow_version=row.workflow_version,
        state=ExecutionState(row.state),
        input=row.input_view,
        output=row.output_view,
        created_at=row.created_at,
        updated_at=row.updated_at,
        worker=row.worker_name,
        events=records,
    )


def _output(request: CheckpointRequest) -> dict[str, Any]:
    if request.output is not None:
        return {
            "output": b64(request.output.value, "the output value"),
            "output_view": request.output.view,
        }
    terminal = next((r for r in reversed(request.events) if r.type.is_workflow), None)
    if terminal is None:
        return {}
    return {"output": b64(terminal.value, "the output value"), "output_view": terminal.view}
