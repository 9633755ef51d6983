"""Registered workflows and their versions."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flux.domain import utcnow
from flux.errors import NotFoundError, UsageError
from flux.protocol import (
    ResourceRequest,
    WorkflowDetail,
    WorkflowOptions,
    WorkflowSummary,
    WorkflowVersion,
)

from flux_server.db import Database, Tx
from flux_server.db.tables import executions, workflows
from flux_server.notes import WORKFLOWS
from flux_server.source import WorkflowDefinition, read_workflows
from flux_server.store._common import new_id
from flux_server.store._states import HELD

__all__ = ["LatestWorkflow", "WorkflowStore"]

_W = workflows.c
_SUMMARY = (_W.id, _W.name, _W.version, _W.source_hash, _W.options, _W.created_at)


@dataclass(frozen=True, slots=True)
class LatestWorkflow:
    """What starting an execution needs to know about the latest version."""

    id: str
    name: str
    version: int
    requests: dict[str, Any] | None


class WorkflowStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._latest: dict[str, LatestWorkflow] = {}

    def invalidate(self) -> None:
        """Forget cached latest versions (a registration happened, here or on a replica)."""
        self._latest.clear()

    async def register(
        self, definitions: Sequence[WorkflowDefinition], source: str, source_hash: str
    ) -> list[WorkflowSummary]:
        """Store ``source`` as a new version of each workflow it defines; a workflow whose
        latest version has the same source keeps that version."""
        for attempt in range(3):
            try:
                return await self._register(definitions, source, source_hash)
            except sa.exc.IntegrityError:
                # A concurrent registration of the same name took this version number.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _register(
        self, definitions: Sequence[WorkflowDefinition], source: str, source_hash: str
    ) -> list[WorkflowSummary]:
        now = utcnow()

        def write(tx: Tx[sa.Connection]) -> list[WorkflowSummary]:
            summaries = []
            for definition in definitions:
                latest = tx.conn.execute(
                    sa.select(*_SUMMARY)
                    .where(_W.name == definition.name)
                    .order_by(_W.version.desc())
                    .limit(1)
                ).first()
                if latest is not None and latest.source_hash == source_hash:
                    summaries.append(_summary(latest))
                    continue
                row = {
                    "id": new_id(),
                    "name": definition.name,
                    "version": 1 if latest is None else latest.version + 1,
                    "source": source,
                    "source_hash": source_hash,
                    "options": definition.options.model_dump(mode="json"),
                    "secret_names": list(definition.secret_names),
                    "created_at": now,
                }
                tx.conn.execute(sa.insert(workflows).values(row))
                summaries.append(_summary(row))
            tx.notify(WORKFLOWS)
            return summaries

        return await self.db.run_write(write)

    async def list(self) -> list[WorkflowSummary]:
        """The latest version of every workflow, by name."""
        newest = (
            sa.select(_W.name, sa.func.max(_W.version).label("version"))
            .group_by(_W.name)
            .subquery()
        )
        query = (
            sa.select(*_SUMMARY)
            .join(newest, sa.and_(_W.name == newest.c.name, _W.version == newest.c.version))
            .order_by(_W.name)
        )
        return await self.db.run_read(lambda conn: [_summary(row) for row in conn.execute(query)])

    async def get(self, name: str) -> WorkflowDetail:
        """Raises NotFoundError for an unknown name."""
        query = sa.select(*_SUMMARY, _W.source).where(_W.name == name).order_by(_W.version)
        rows = await self.db.run_read(lambda conn: conn.execute(query).all())
        if not rows:
            raise _not_found(name)
        latest = rows[-1]
        return WorkflowDetail(
            **_summary(latest).model_dump(),
            source=latest.source,
            versions=[
                WorkflowVersion(
                    id=r.id, version=r.version, source_hash=r.source_hash, created_at=r.created_at
                )
                for r in rows
            ],
        )

    async def secrets_for(self, worker: str, execution_id: str) -> builtins.list[str] | None:
        """The secrets ``worker`` may be given for ``execution_id``: those its workflow version
        asked for (``secret_requests`` of the workflow and of the tasks in its file);
        ``None`` when the worker does not hold the execution."""
        query = (
            sa.select(_W.name, _W.options, _W.secret_names, _W.source)
            .join(executions, executions.c.workflow_id == _W.id)
            .where(
                executions.c.id == execution_id,
                executions.c.worker_name == worker,
                executions.c.state.in_(HELD),
            )
        )
        row = await self.db.run_read(lambda conn: conn.execute(query).first())
        return None if row is None else _secret_names(row)

    async def latest(self, name: str) -> LatestWorkflow:
        """The latest version of ``name`` (cached until the next registration).

        Raises:
            NotFoundError: no workflow of that name.
        """
        cached = self._latest.get(name)
        if cached is not None:
            return cached
        query = (
            sa.select(_W.id, _W.name, _W.version, _W.options)
            .where(_W.name == name)
            .order_by(_W.version.desc())
            .limit(1)
        )
        row = await self.db.run_read(lambda conn: conn.execute(query).first())
        if row is None:
            raise _not_found(name)
        latest = LatestWorkflow(row.id, row.name, row.version, _requests(row.options))
        self._latest[name] = latest
        return latest


def _not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"no workflow named {name!r}; register it first (POST /workflows, `flux workflow "
        "register FILE`)",
        workflow=name,
    )


def _secret_names(row: Any) -> list[str]:
    """The secrets a version's executions may be given; read from its source for a version
    registered before they were kept (revision 0010)."""
    if row.secret_names is not None:
        return list(row.secret_names)
    try:
        definitions = read_workflows(row.source)
    except UsageError:  # accepted by an older server's rules: its own requests only
        return list((row.options or {}).get("secret_requests") or [])
    found = next((d for d in definitions if d.name == row.name), None)
    return list(found.secret_names) if found is not None else []


def _summary(row: Any) -> WorkflowSummary:
    get = row.__getitem__ if isinstance(row, dict) else row._mapping.__getitem__
    return WorkflowSummary(
        id=get("id"),
        name=get("name"),
        version=get("version"),
        source_hash=get("source_hash"),
        options=WorkflowOptions.model_validate(get("options") or {}),
        created_at=get("created_at"),
    )


def _requests(options: dict[str, Any] | None) -> dict[str, Any] | None:
    raw = (options or {}).get("requests")
    if not raw:
        return None
    request = ResourceRequest.model_validate(raw)
    return None if request.is_empty() else request.model_dump(exclude_none=True)
