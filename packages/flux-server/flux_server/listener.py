"""PostgreSQL LISTEN: hear the notes other replicas commit (see ``flux_server.db.notifier``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

from flux_server.db import Database
from flux_server.db.notifier import NOTIFY_CHANNEL, listener_name
from flux_server.notes import MISSED

__all__ = ["listen"]

log = logging.getLogger(__name__)


async def listen(db: Database, deliver: Callable[[str], None], ready: asyncio.Event) -> None:
    """Deliver every note from another process until cancelled; reconnects on failure."""
    conninfo = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    delay = 0.1
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                conninfo, autocommit=True, application_name=listener_name(db.origin)
            ) as conn:
                await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                delay = 0.1
                ready.set()
                # Whatever was sent while we were not listening may have been missed.
                deliver(MISSED)
                async for notice in conn.notifies():
                    origin, _, note = notice.payload.partition("|")
                    if origin != db.origin:
                        deliver(note)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("LISTEN connection lost (%s); reconnecting in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
