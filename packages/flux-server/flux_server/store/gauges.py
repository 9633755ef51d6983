"""What the metrics' gauges read at scrape time (:mod:`flux_server.metrics`): executions per
state and the workers alive with their slots, from the database, so every replica answers
the same."""

from __future__ import annotations

import sqlalchemy as sa

from flux_server.db import Database
from flux_server.db.tables import executions, workers
from flux_server.metrics import Gauges
from flux_server.store._states import HELD
from flux_server.store.listing import counts

__all__ = ["read_gauges"]

_K = workers.c
_C = executions.c
# Each worker alive with what it holds (down the index of held executions by holder).
_SLOTS = sa.select(
    _K.capacity,
    sa.select(sa.func.count())
    .where(_C.worker_name == _K.name, _C.state.in_(HELD))
    .scalar_subquery()
    .label("used"),
).where(_K.connected.is_(True))


async def read_gauges(db: Database) -> Gauges:
    """The gauges now, in one read."""

    def read(conn: sa.Connection) -> Gauges:
        alive = conn.execute(_SLOTS).all()
        return Gauges(
            executions=counts(conn),
            workers=len(alive),
            slots_used=sum(used for _, used in alive),
            slots_available=sum(max(0, capacity - used) for capacity, used in alive),
        )

    return await db.run_read(read)
