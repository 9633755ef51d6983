"""Planner statistics for the tables that grow from empty faster than autovacuum looks at them
(PostgreSQL).

PostgreSQL plans a prepared statement for the table as it is when the statement has run a few
times, and keeps that plan until something invalidates it, such as an ``ANALYZE`` of a table
it reads. A new database's ``executions`` table grows from a handful of rows to thousands in
its first minute; the server's claims and placement reads were planned for the near-empty
table (a sequential scan is cheapest there) and go on scanning the whole table, every dead row
included, until autovacuum analyzes it: it looks once a minute, and only after a tenth of the
table changed.

:class:`StatisticsKeeper` looks every :data:`INTERVAL` seconds and analyzes a table whose rows
changed, since its last analysis, at least :data:`FIRST` times and more often than the
statistics count rows (so they are off by half or more): about each time a young table
doubles. An older table is left to autovacuum, which analyzes it after a tenth changed. One
replica at a time analyzes (an advisory lock); the analysis invalidates every replica's plans
of the statements reading the table.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import sqlalchemy as sa

from flux_server.db.database import Database
from flux_server.db.tx import Tx

__all__ = ["FIRST", "INTERVAL", "LOCK", "TABLES", "StatisticsKeeper"]

log = logging.getLogger(__name__)

INTERVAL = 1.0
"""Seconds between two looks at the tables' statistics (a look is one catalog query)."""
FIRST = 10_000
"""Changes of rows since the last analysis below which a table is never analyzed here: an
analysis makes every connection plan its statements again (five times each before PostgreSQL
settles on one plan), which costs more than a few thousand rows scanned."""
TABLES = ("executions", "events")
"""The tables looked after: those the hot statements read."""
LOCK = 0x464C5853  # "FLXS"
"""The advisory lock a replica holds while it analyzes (the others skip their turn)."""

_STALE = sa.text(
    "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
    "WHERE s.schemaname = current_schema() AND s.relname IN :tables "
    "AND s.n_mod_since_analyze >= greatest(:first, c.reltuples)"
).bindparams(sa.bindparam("tables", expanding=True))


class StatisticsKeeper:
    """Analyzes :data:`TABLES` when their statistics fall far behind (see the module)."""

    def __init__(self, db: Database, interval: float = INTERVAL) -> None:
        self._db = db
        self._interval = interval

    async def run(self) -> None:
        failing = False
        while True:
            try:
                await self.check_once()
                failing = False
            except Exception:  # the next look tries again; said once while it keeps failing
                log.log(
                    logging.DEBUG if failing else logging.WARNING,
                    "could not look at the tables' statistics",
                    exc_info=True,
                )
                failing = True
            await asyncio.sleep(self._interval)

    async def check_once(self) -> list[str]:
        """Analyze the tables whose statistics are stale; their names (none when another
        replica is analyzing)."""
        params = {"tables": list(TABLES), "first": FIRST}
        stale = await self._db.run_read(
            lambda conn: [name for (name,) in conn.execute(_STALE, params)]
        )
        if not stale:
            return []
        return await self._db.run_write(lambda tx: _analyze(tx, stale))


def _analyze(tx: Tx[Any], tables: list[str]) -> list[str]:
    conn = tx.conn
    if not conn.execute(sa.text(f"SELECT pg_try_advisory_xact_lock({LOCK})")).scalar():
        return []
    for name in tables:  # names from TABLES only
        conn.execute(sa.text(f'ANALYZE "{name}"'))
        log.debug("analyzed %s: its statistics were far behind its rows", name)
    return tables
