"""Deleting old finished executions, their events and their schedule history.

Only finished executions are ever deleted, by construction: every statement that deletes
names the finished states, and a finished execution never moves again (``flux.domain``), so
nothing selected can come back to life between the read and the delete.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

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
    ``workflow``, or of every workflow but ``exclude``), oldest first, in one transaction;
    how many it deleted. Call again until it deletes fewer than ``limit``."""
    query = (
        sa.select(_C.id)
        .where(_C.state.in_(_FINISHED), _C.updated_at < cutoff)
        .order_by(_C.updated_at)
        .limit(limit)
    )
    if workflow is not None:
        query = query.where(_C.workflow_name == workflow)
    if exclude:
        query = query.where(_C.workflow_name.not_in(list(exclude)))

    def write(tx: Tx[sa.Connection]) -> int:
        ids = list(tx.conn.execute(query).scalars())
        if not ids:
            return 0
        tx.conn.execute(sa.delete(events).where(events.c.execution_id.in_(ids)))
        tx.conn.execute(sa.delete(schedule_runs).where(schedule_runs.c.execution_id.in_(ids)))
        done = tx.conn.execute(sa.delete(executions).where(_C.id.in_(ids), _C.state.in_(_FINISHED)))
        return int(done.rowcount)

    return await db.run_write(write)
