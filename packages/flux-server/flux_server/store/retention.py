"""Deleting old finished executions, their events and their schedule history.

Only finished executions are ever deleted, by construction: every statement that deletes
names the finished states, and a finished execution never moves again (``flux.domain``), so
nothing selected can come back to life between the read and the delete.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flux.domain import FINISHED_STATES

from flux_server.db import Database, Tx
from flux_server.db.tables import events, executions, schedule_runs

__all__ = ["prune_batch"]

_C = executions.c
_FINISHED = sorted(s.value for s in FINISHED_STATES)


async def prune_batch(
    db: Database,
    cutoff: datetime,
    *,
    workflow: str | None = None,
    exclude: Sequence[str] = (),
    limit: int = 500,
) -> int:
    """Delete up to ``limit`` finished executions last updated before ``cutoff`` (of
    ``workflow``, or of every workflow but ``exclude``), oldest created first within each
    state, in one transaction; how many it deleted. Call again until it deletes fewer than
    ``limit``."""

    # Walked per finished state in creation order, through the (state, created_at) index the
    # listing uses, each scan stopping at the limit: an execution last updated before the
    # cutoff was created before it too. (One query over the three states sorts every match
    # first; an index on updated_at would serve the order directly, but every checkpoint
    # moves updated_at, and on PostgreSQL an indexed column that changes rules out in-place
    # updates.)
    def candidates(state: str, n: int) -> sa.Select[Any]:
        query = (
            sa.select(_C.id)
            .where(_C.state == state, _C.created_at < cutoff, _C.updated_at < cutoff)
            .order_by(_C.created_at)
            .limit(n)
        )
        if workflow is not None:
            query = query.where(_C.workflow_name == workflow)
        if exclude:
            query = query.where(_C.workflow_name.not_in(list(exclude)))
        return query

    def write(tx: Tx[sa.Connection]) -> int:
        ids: list[str] = []
        for state in _FINISHED:
            if len(ids) < limit:
                ids += [
                    str(i) for i in tx.conn.execute(candidates(state, limit - len(ids))).scalars()
                ]
        if not ids:
            return 0
        tx.conn.execute(sa.delete(events).where(events.c.execution_id.in_(ids)))
        tx.conn.execute(sa.delete(schedule_runs).where(schedule_runs.c.execution_id.in_(ids)))
        done = tx.conn.execute(sa.delete(executions).where(_C.id.in_(ids), _C.state.in_(_FINISHED)))
        return int(done.rowcount)

    return await db.run_write(write)
