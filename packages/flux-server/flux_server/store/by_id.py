"""Executions named by id alone, without their workflow: what to run one again with, and
cancelling several at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from flux.errors import ConflictError, NotFoundError
from flux.protocol import CancelBatchResponse, CancelResult, ErrorBody

from flux_server.db import Database
from flux_server.db.tables import executions
from flux_server.store import _client
from flux_server.store._rows import execution_not_found

__all__ = ["cancel_many", "run_of"]

_C = executions.c
_RUN_OF = sa.select(_C.workflow_name, _C.input_view).where(_C.id == sa.bindparam("b_id"))


async def run_of(db: Database, execution_id: str) -> tuple[str, Any]:
    """The workflow name and the input (its JSON view) an execution was started with.

    Raises:
        ExecutionNotFoundError: unknown id.
    """
    row = await db.run_read(lambda conn: conn.execute(_RUN_OF, {"b_id": execution_id}).first())
    if row is None:
        raise execution_not_found(execution_id)
    return row.workflow_name, row.input_view


async def cancel_many(db: Database, execution_ids: Sequence[str]) -> CancelBatchResponse:
    """Cancel each execution as a cancel by its workflow would, each in its own transaction:
    one that is unknown or already finished gets an ``error`` and changes nothing for the
    others. One result per distinct id, in the order given."""
    ids = list(dict.fromkeys(execution_ids))
    query = sa.select(_C.id, _C.workflow_name).where(_C.id.in_(ids))
    rows = await db.run_read(lambda conn: conn.execute(query).all())
    names: dict[str, str] = {execution_id: name for execution_id, name in rows}
    results = []
    for execution_id in ids:
        try:
            name = names.get(execution_id)
            if name is None:
                raise execution_not_found(execution_id)
            status = await _client.cancel(db, name, execution_id)
        except (NotFoundError, ConflictError) as exc:
            error = ErrorBody.model_validate(exc.to_dict())
            results.append(CancelResult(execution_id=execution_id, error=error))
        else:
            results.append(CancelResult(execution_id=execution_id, state=status.state))
    return CancelBatchResponse(results=results)
