"""Claims: a worker takes executions (with a new generation, which fences the previous
holder), lets go of them, and reports what it holds.

A claim's answer is built from rows straight to wire values (no model per event); on
PostgreSQL a history sent column by column is built by the database itself.
"""

from __future__ import annotations

import itertools
import operator
from binascii import b2a_base64
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flux.domain import ExecutionState, Trigger, move, utcnow
from flux.errors import ConflictError, FluxError, NotFoundError
from flux.protocol import HistoryColumns, ReleaseRequest, ReleaseResponse
from flux.serialization import b64encode

from flux_server.db import Database, Tx
from flux_server.db.raw import Statement
from flux_server.db.tables import executions
from flux_server.db.types import from_epoch
from flux_server.metrics import Claimed
from flux_server.notes import DISPATCH, exec_note
from flux_server.rawjson import RawJson
from flux_server.store._rows import BUMP, REQUEUED, fenced, finish_cancelled, not_found
from flux_server.store._states import CLAIMED, HELD, QUEUED, RECLAIMABLE, one, quoted

__all__ = ["claim", "claim_batch", "claim_many", "held_by", "holds", "release"]

_C = executions.c
Outcome = dict[str, Any] | ConflictError | NotFoundError
"""A claim's answer as JSON-ready values, or why it was refused."""


async def claim(db: Database, worker: str, execution_id: str) -> dict[str, Any]:
    """Give the execution to ``worker`` (see :meth:`ExecutionStore.claim`).

    Raises:
        NotFoundError: unknown execution.  ConflictError: not claimable now.
    """

    def write(tx: Tx[sa.Connection]) -> dict[str, Any]:
        [(_, outcome)] = claim_batch(tx, worker, [execution_id], utcnow(), frozenset())
        if isinstance(outcome, FluxError):
            raise outcome
        return outcome

    return await db.run_write(write)


async def claim_many(
    db: Database,
    worker: str,
    execution_ids: Sequence[str],
    known_sources: Sequence[str],
    columns: bool,
) -> list[dict[str, Any]]:
    """Claim several executions in one transaction, each on its own (see
    :meth:`ExecutionStore.claim_many`)."""
    known = frozenset(known_sources)

    def write(tx: Tx[sa.Connection]) -> list[dict[str, Any]]:
        ids = list(dict.fromkeys(execution_ids))
        return [
            {"execution_id": i, "claim": None, "error": outcome.to_dict()}
            if isinstance(outcome, FluxError)
            else {"execution_id": i, "claim": outcome, "error": None}
            for i, outcome in claim_batch(tx, worker, ids, utcnow(), known, columns)
        ]

    return await db.run_write(write)


async def release(
    db: Database, worker: str, execution_id: str, request: ReleaseRequest
) -> ReleaseResponse:
    """Put a held execution back in the queue (a cancelling one is cancelled instead).

    Raises:
        NotFoundError: unknown execution.  ConflictError: stale generation (fenced).
    """
    now = utcnow()

    def write(tx: Tx[sa.Connection]) -> ReleaseResponse:
        row = fenced(tx, worker, execution_id, request.generation)
        state = ExecutionState(row.state)
        target = move(state, Trigger.RELEASE)
        if target == ExecutionState.CANCELLED:
            finish_cancelled(tx, execution_id, row.workflow_name, now)
            state = target
        elif target is not None:
            tx.conn.execute(BUMP, {"b_id": execution_id, **REQUEUED, "updated_at": now})
            state = target
            tx.notify(DISPATCH)
        return ReleaseResponse(state=state)

    return await db.run_write(write)


async def held_by(
    db: Database, worker: str, running: Sequence[str] | None, grace: float
) -> tuple[list[str], list[str]]:
    """(held execution ids, those of them being cancelled); see
    :meth:`ExecutionStore.held_by`."""
    if running is None:
        rows = await db.run_read(lambda conn: conn.execute(_HELD_BY, {"b_worker": worker}).all())
    else:
        rows = await db.run_write(lambda tx: _reconcile(tx, worker, set(running), grace, utcnow()))
    held = [r.id for r in rows]
    return held, [r.id for r in rows if r.state == ExecutionState.CANCELLING]


async def holds(db: Database, worker: str, execution_id: str) -> bool:
    """Whether ``worker`` holds the execution now."""
    params = {"b_id": execution_id, "b_worker": worker}
    return await db.run_read(lambda conn: conn.execute(_HOLDS, params).first() is not None)


def _reconcile(
    tx: Tx[sa.Connection], worker: str, running: set[str], grace: float, now: datetime
) -> list[Any]:
    idle_since = now - timedelta(seconds=grace)
    held = []
    for row in tx.conn.execute(_HELD_BY, {"b_worker": worker}).all():
        if row.id in running or row.updated_at > idle_since:
            held.append(row)
            continue
        target = move(ExecutionState(row.state), Trigger.RELEASE)
        assert target is not None, row.state  # every held state can be released
        if target == ExecutionState.CANCELLED:
            finish_cancelled(tx, row.id, row.workflow_name, now)
        else:
            tx.conn.execute(BUMP, {"b_id": row.id, **REQUEUED, "updated_at": now})
            tx.notify(exec_note(row.id, target))
            tx.notify(DISPATCH)
    return held


def claim_batch(
    tx: Tx[sa.Connection],
    worker: str,
    ids: list[str],
    now: datetime,
    known: frozenset[str],
    columns: bool = False,
    queued_since: Mapping[str, datetime] | None = None,
) -> list[tuple[str, Outcome]]:
    """Give distinct executions to ``worker`` with a new generation, in a few statements for
    all of them (one conditional update; a history read when one has events, a source read
    when the worker lacks one). Per id, in
    order: the :class:`ClaimResponse` as a dict of wire values (the history goes from rows to
    JSON values without a model per event; sources whose hash is in ``known`` are sent
    empty), or why it cannot be claimed. The holder of a claimed execution that has not
    started may claim it again (a retry after a lost answer).

    ``queued_since``: when each of the queued ones among ``ids`` was queued (their
    ``updated_at``), if the caller has read it; otherwise it is read here. A claim of a queued
    execution records its wait (:class:`~flux_server.metrics.Claimed`); a claim again by the
    holder records nothing."""
    conn = tx.conn
    if queued_since is None:
        queued_since = {r.id: r.updated_at for r in _QUEUED_SINCE.execute(conn, {"ids": ids})}
    params = {"ids": ids, "worker": worker, "now": now}
    claimed = {r.id: r for r in _CLAIM_MANY.execute(conn, params)}
    for execution_id in claimed:
        since = queued_since.get(execution_id)
        if since is not None:
            tx.record(Claimed(max(0.0, (now - since).total_seconds())))
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
    outcomes: list[tuple[str, Outcome]] = []
    for execution_id in ids:
        row = claimed.get(execution_id)
        if row is None:
            outcomes.append((execution_id, _claim_refused(conn, execution_id)))
            continue
        source = sources.get(row.workflow_id, "")  # "" when the worker has it
        history = histories.get(execution_id)
        if columns:
            answer = _claim_answer(row, source, [])
            answer["history_columns"] = history or _NO_COLUMNS
        else:
            answer = _claim_answer(row, source, history or [])
        outcomes.append((execution_id, answer))
    return outcomes


def _claim_refused(conn: sa.Connection, execution_id: str) -> ConflictError | NotFoundError:
    """Why ``execution_id`` could not be claimed: it does not exist, or is not claimable."""
    current = conn.execute(_READ_HOLDER, {"b_id": execution_id}).first()
    if current is None:
        return not_found(execution_id)
    holder = f" by worker {current.worker_name!r}" if current.state in HELD else ""
    return ConflictError(
        f"execution {execution_id!r} cannot be claimed: it is {current.state}{holder}",
        state=current.state,
    )


def _claim_answer(row: Any, source: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    answer = {
        "execution_id": row.id,
        "generation": row.generation,
        "workflow_id": row.workflow_id,
        "workflow_name": row.workflow_name,
        "workflow_version": row.workflow_version,
        "source": source,
        "source_hash": row.source_hash,
        "input": b64encode(row.input),
        "events": events,
        "state": CLAIMED.value,
        "requests": row.requests or None,
    }
    if row.traceparent:  # only then: claims of executions without a trace stay as they were
        answer["traceparent"] = row.traceparent
    return answer


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


# -- statements -----------------------------------------------------------------------------------

_CLAIMED = one([CLAIMED])
# A claim of held-or-queued executions: the new generation and what the claim answer needs.
_CLAIM_MANY = Statement(
    f"""
UPDATE executions SET state = {_CLAIMED}, worker_name = :worker, generation = generation + 1,
    claimed_at = :now, offered_to = NULL, offered_at = NULL, updated_at = :now
WHERE id IN (:ids) AND (state IN ({quoted(QUEUED)})
    OR (state = {one(RECLAIMABLE)} AND worker_name = :worker))
RETURNING id, generation, workflow_id, workflow_name, workflow_version, input, requests,
    traceparent, (SELECT source_hash FROM workflows w WHERE w.id = executions.workflow_id),
    EXISTS (SELECT 1 FROM events e WHERE e.execution_id = executions.id)
""",
    times=("now",),
    lists=("ids",),
    columns=(
        *("id", "generation", "workflow_id", "workflow_name", "workflow_version"),
        *("input", "requests", "traceparent", "source_hash", "has_history"),
    ),
    json_columns=("requests",),
)
# When each queued one of some executions was queued: ``updated_at`` changes with nothing else
# while an execution waits in the queue (offers have columns of their own).
_QUEUED_SINCE = Statement(
    f"SELECT id, updated_at FROM executions WHERE id IN (:ids) AND state IN ({quoted(QUEUED)})",
    lists=("ids",),
    columns=("id", "updated_at"),
    time_columns=("updated_at",),
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
# One sort of integers instead of seven of text (see docs/decisions.md).
#
# PostgreSQL's base64 breaks lines after 76 characters (57 bytes), which JSON must not carry:
# only longer values pay for taking the breaks out (most values are a few bytes, and the
# translate of every value was a large share of the statement: docs/benchmarks.md).
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
_READ_HOLDER = sa.select(_C.state, _C.worker_name).where(_C.id == sa.bindparam("b_id"))
_HELD_BY = sa.select(_C.id, _C.state, _C.workflow_name, _C.updated_at).where(
    _C.worker_name == sa.bindparam("b_worker"), _C.state.in_(HELD)
)
_HOLDS = sa.select(_C.id).where(
    _C.id == sa.bindparam("b_id"), _C.worker_name == sa.bindparam("b_worker"), _C.state.in_(HELD)
)
