"""Offers: a dispatch round picks queued executions for this process's workers (where each
goes is :mod:`flux_server.placement`'s choice) and records the offers, or claims at once for
workers that take pushed claims.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flux.domain import utcnow
from flux.protocol import ExecutionScheduledFrame

from flux_server.db import Database, Tx
from flux_server.db.raw import Statement
from flux_server.db.tables import executions
from flux_server.notes import DISPATCH
from flux_server.placement import OfferTarget, Placement
from flux_server.store._claims import claim_batch
from flux_server.store._states import HELD, QUEUED, one, quoted

__all__ = ["offer", "withdraw_offers"]

_C = executions.c
_PAGE = 500
Offer = tuple[str, ExecutionScheduledFrame | dict[str, Any]]
"""(worker, the offer's frame or a pushed claim's answer)."""


async def offer(db: Database, targets: Sequence[OfferTarget], claim_timeout: float) -> list[Offer]:
    """Pick queued executions for ``targets`` and record the offers (see
    :meth:`ExecutionStore.offer`)."""
    if not targets:
        return []
    return await db.run_write(lambda tx: _offer(tx, targets, claim_timeout))


async def withdraw_offers(db: Database, worker: str) -> None:
    """Forget unclaimed offers to ``worker`` (its stream closed) so others get them now."""

    def write(tx: Tx[sa.Connection]) -> None:
        result = tx.conn.execute(_WITHDRAW, {"b_worker": worker})
        if result.rowcount:
            tx.notify(DISPATCH)

    await db.run_write(write)


def _offer(
    tx: Tx[sa.Connection], targets: Sequence[OfferTarget], claim_timeout: float
) -> list[Offer]:
    now = utcnow()
    cutoff = now - timedelta(seconds=claim_timeout)
    names = [t.name for t in targets]
    placement = Placement(
        targets, _load(tx.conn, names, cutoff), lambda: _gpu_users(tx.conn, names, cutoff)
    )
    if not placement.has_room():
        return []
    offers: list[tuple[str, ExecutionScheduledFrame]] = []
    queued_since: dict[str, datetime] = {}
    after: tuple[datetime, str] | None = None
    while placement.has_room():
        page = _queued(tx.conn, cutoff, after)
        for row in page:
            name = placement.place(row.requests, lapsed=row.offered_to)
            if name is None:
                continue
            queued_since[row.id] = row.updated_at
            frame = ExecutionScheduledFrame.model_construct(
                execution_id=row.id,
                workflow_name=row.workflow_name,
                workflow_version=row.workflow_version,
            )
            offers.append((name, frame))
            if not placement.has_room():
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
    answer: list[Offer] = list(offered)
    for worker, known in pushed.items():
        ids = [f.execution_id for w, f in offers if w == worker]
        if ids:  # rows this transaction picked and locked: each claim succeeds
            claims = claim_batch(tx, worker, ids, now, known, True, queued_since)
            for _, claim in claims:
                if isinstance(claim, dict):
                    answer.append((worker, claim))
    return answer


def _load(conn: sa.Connection, names: list[str], cutoff: datetime) -> dict[str, int]:
    """What each worker holds or has been offered (recently), from the database: the truth
    shared by every replica."""
    load: dict[str, int] = {}
    for w, n in _LOAD.execute(conn, {"names": names, "cutoff": cutoff}):
        load[w] = load.get(w, 0) + n
    return load


def _gpu_users(conn: sa.Connection, names: list[str], cutoff: datetime) -> list[Any]:
    """(worker, requests) of the executions with requests held by, or recently offered to,
    the workers ``names``."""
    return list(conn.execute(_GPU_USERS, {"b_names": names, "b_cutoff": cutoff}))


def _queued(conn: sa.Connection, cutoff: datetime, after: tuple[datetime, str] | None) -> list[Any]:
    if after is None:
        return _QUEUED.execute(conn, {"cutoff": cutoff})
    params = {"cutoff": cutoff, "created_at": after[0], "after_id": after[1]}
    return _QUEUED_AFTER.execute(conn, params)


# -- statements -----------------------------------------------------------------------------------

(_QUEUED_STATE,) = QUEUED
_OFFER = sa.update(executions).where(_C.id == sa.bindparam("b_id"))
_WITHDRAW = (
    sa.update(executions)
    .where(_C.offered_to == sa.bindparam("b_worker"), _C.state == _QUEUED_STATE)
    .values(offered_to=None, offered_at=None)
)
_LOAD_SQL = f"""
SELECT worker_name, count(*) FROM executions
WHERE worker_name IN (:names) AND state IN ({quoted(HELD)}) GROUP BY worker_name
UNION ALL
SELECT offered_to, count(*) FROM executions
WHERE offered_to IN (:names) AND state = {one(QUEUED)} AND offered_at >= :cutoff
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
        _C.state.in_(HELD),
        _C.requests.is_not(None),
    ),
    sa.select(_C.offered_to.label("w"), _C.requests).where(
        _C.offered_to.in_(sa.bindparam("b_names", expanding=True)),
        _C.state == _QUEUED_STATE,
        _C.offered_at >= sa.bindparam("b_cutoff", type_=_C.offered_at.type),
        _C.requests.is_not(None),
    ),
)
_QUEUED_SQL = f"""
SELECT id, workflow_name, workflow_version, requests, offered_to, created_at, updated_at
FROM executions
WHERE state IN ({quoted(QUEUED)}) AND (offered_to IS NULL OR offered_at < :cutoff) {{after}}
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
        columns=(
            *("id", "workflow_name", "workflow_version", "requests", "offered_to"),
            *("created_at", "updated_at"),
        ),
        time_columns=("created_at", "updated_at"),
        json_columns=("requests",),
    )


_QUEUED = _queued_statement(after=False)
_QUEUED_AFTER = _queued_statement(after=True)
