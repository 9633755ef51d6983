"""The server's retention passes: finished executions older than their workflow's age go, a
batch per transaction (``[flux.retention]``; off by default).

Every replica may run passes: a batch is one transaction that deletes only what it selected
and what is still finished, so two replicas at once delete each row once and never anything
else.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import timedelta

from flux.config import RetentionSettings
from flux.domain import utcnow

from flux_server.db import Database
from flux_server.store.retention import prune_batch

__all__ = ["Retention", "prune"]

log = logging.getLogger(__name__)

_DAY = 86_400.0


async def prune(
    db: Database,
    older_than: float,
    *,
    workflow: str | None = None,
    batch_size: int = 500,
    exclude: tuple[str, ...] = (),
) -> int:
    """Delete every finished execution last updated more than ``older_than`` seconds ago (of
    ``workflow``, or of all workflows but ``exclude``), a batch per transaction; how many."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    total = 0
    while True:
        deleted = await prune_batch(
            db, cutoff, workflow=workflow, exclude=exclude, limit=batch_size
        )
        total += deleted
        if deleted < batch_size:
            return total
        await asyncio.sleep(0)  # let requests in between batches


class Retention:
    """Runs a pass every ``settings.interval`` seconds while ``settings`` asks for one."""

    def __init__(self, db: Database, settings: RetentionSettings) -> None:
        self.db = db
        self.settings = settings

    @property
    def enabled(self) -> bool:
        s = self.settings
        return _pruned(s.max_age_days) or any(_pruned(v) for v in s.workflows.values())

    async def run(self) -> None:
        while True:
            try:
                deleted = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed pass is retried next interval, never fatal
                log.exception("retention pass failed")
            else:
                if deleted:
                    log.info("retention: deleted %d finished executions", deleted)
            await asyncio.sleep(self.settings.interval)

    async def run_once(self) -> int:
        """One pass: each overridden workflow at its own age, the rest at ``max_age_days``."""
        s = self.settings
        total = 0
        for workflow, days in sorted(s.workflows.items()):
            if days is not None and _pruned(days):
                total += await prune(
                    self.db, days * _DAY, workflow=workflow, batch_size=s.batch_size
                )
        if s.max_age_days is not None and _pruned(s.max_age_days):
            total += await prune(
                self.db,
                s.max_age_days * _DAY,
                exclude=tuple(s.workflows),
                batch_size=s.batch_size,
            )
        return total


def _pruned(days: float | None) -> bool:
    """Whether an age deletes anything: ``None`` and ``inf`` (TOML has no null) keep all."""
    return days is not None and math.isfinite(days)
