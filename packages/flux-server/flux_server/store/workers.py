"""Registered workers: sessions, liveness, and what they report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flux.domain import utcnow
from flux.protocol import (
    PackageInfo,
    RegisterWorkerRequest,
    WorkerInfo,
    WorkerResources,
    WorkerRuntime,
)

from flux_server.db import Database, Tx
from flux_server.db.tables import executions, workers
from flux_server.notes import DISPATCH, drop_note, token_note
from flux_server.store._common import requeue_held
from flux_server.store._states import HELD

__all__ = ["WorkerRecord", "WorkerStore"]

_K = workers.c
_CONNECTED = sa.select(_K.connected).where(_K.name == sa.bindparam("b_name"))
_UPDATE = sa.update(workers).where(_K.name == sa.bindparam("b_name"))
_HELD_BY = sa.select(executions.c.id).where(
    executions.c.worker_name == sa.bindparam("b_name"), executions.c.state.in_(HELD)
)


def _gone(tx: Tx[sa.Connection], names: list[str]) -> None:
    """Workers ``names`` are no more: requeue what they held, close their streams."""
    if names:
        requeue_held(tx, names, utcnow())
        for name in names:
            tx.notify(drop_note(name))


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    name: str
    capacity: int
    resources: WorkerResources
    packages: list[PackageInfo]


class WorkerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def register(self, request: RegisterWorkerRequest, token_hash: str) -> None:
        """Create or replace the worker ``request.name`` with a new session.

        A previous session of that name ends: its token stops working and what it held goes back
        to the queue (fenced), since a new session means a new process.
        """
        now = utcnow()
        values = {
            "session_token_hash": token_hash,
            "runtime": request.runtime.model_dump(mode="json"),
            "resources": request.resources.model_dump(mode="json"),
            "packages": [p.model_dump(mode="json") for p in request.packages],
            "capacity": request.capacity,
            "last_heartbeat": now,
            # Connected (alive) from its first stream or heartbeat on.
            "connected": False,
            "registered_at": now,
        }

        def write(tx: Tx[sa.Connection]) -> None:
            old = tx.conn.execute(
                sa.select(_K.session_token_hash).where(_K.name == request.name)
            ).first()
            if old is None:
                tx.conn.execute(sa.insert(workers).values(name=request.name, **values))
            else:
                tx.conn.execute(sa.update(workers).where(_K.name == request.name).values(**values))
                tx.notify(token_note(old.session_token_hash))
                requeue_held(tx, [request.name], now)
            tx.notify(DISPATCH)

        await self.db.run_write(write)

    async def token_owner(self, token_hash: str) -> str | None:
        query = sa.select(_K.name).where(_K.session_token_hash == token_hash)
        return await self.db.run_read(lambda conn: conn.execute(query).scalar_one_or_none())

    async def get(self, name: str) -> WorkerRecord | None:
        query = sa.select(_K.name, _K.capacity, _K.resources, _K.packages).where(_K.name == name)
        row = await self.db.run_read(lambda conn: conn.execute(query).first())
        if row is None:
            return None
        return WorkerRecord(
            row.name,
            row.capacity,
            WorkerResources.model_validate(row.resources),
            [PackageInfo.model_validate(p) for p in row.packages or ()],
        )

    async def heartbeat(self, name: str, resources: WorkerResources | None) -> bool:
        """Record that ``name`` is alive; ``True`` when it had been declared dead."""
        values: dict[str, object] = {"last_heartbeat": utcnow(), "connected": True}
        if resources is not None:
            values["resources"] = resources.model_dump(mode="json")

        def write(tx: Tx[sa.Connection]) -> bool:
            was = tx.conn.execute(_CONNECTED, {"b_name": name}).scalar_one_or_none()
            tx.conn.execute(_UPDATE, {"b_name": name, **values})
            if was is False:
                tx.notify(DISPATCH)
            return was is False

        return await self.db.run_write(write)

    async def expire(self, cutoff: datetime) -> list[str]:
        """Declare dead every worker silent since ``cutoff``; requeue what they held."""

        def write(tx: Tx[sa.Connection]) -> list[str]:
            names = list(
                tx.conn.execute(
                    sa.update(workers)
                    .where(_K.connected.is_(True), _K.last_heartbeat < cutoff)
                    .values(connected=False)
                    .returning(_K.name)
                ).scalars()
            )
            _gone(tx, names)
            return names

        return await self.db.run_write(write)

    async def leave(self, name: str) -> list[str]:
        """``name`` stops: disconnected from now on, what it still holds requeued (as for a
        dead worker), its streams closed on every replica. Returns the executions it held."""

        def write(tx: Tx[sa.Connection]) -> list[str]:
            held = list(tx.conn.execute(_HELD_BY, {"b_name": name}).scalars())
            tx.conn.execute(_UPDATE, {"b_name": name, "connected": False})
            _gone(tx, [name])
            return held

        return await self.db.run_write(write)

    async def list(self) -> list[WorkerInfo]:
        running = (
            sa.select(executions.c.worker_name, sa.func.count().label("n"))
            .where(executions.c.state.in_(HELD))
            .group_by(executions.c.worker_name)
            .subquery()
        )
        query = (
            sa.select(workers, sa.func.coalesce(running.c.n, 0).label("running"))
            .outerjoin(running, running.c.worker_name == _K.name)
            .order_by(_K.name)
        )
        rows = await self.db.run_read(lambda conn: conn.execute(query).all())
        return [
            WorkerInfo(
                name=r.name,
                connected=r.connected,
                last_heartbeat=r.last_heartbeat,
                capacity=r.capacity,
                running=r.running,
                runtime=WorkerRuntime.model_validate(r.runtime),
                resources=WorkerResources.model_validate(r.resources),
                packages=[PackageInfo.model_validate(p) for p in r.packages],
            )
            for r in rows
        ]
