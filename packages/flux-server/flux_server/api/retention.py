"""``POST /executions/prune``: a one-off retention pass (the periodic one is configured under
``[flux.retention]``, see :mod:`flux_server.retention`)."""

from __future__ import annotations

from fastapi import APIRouter
from flux.protocol import PruneRequest, PruneResponse
from starlette.responses import Response

from flux_server.api.deps import FluxRoute, RuntimeDep, model_response
from flux_server.retention import prune

__all__ = ["router"]

router = APIRouter(prefix="/executions", tags=["executions"], route_class=FluxRoute)


@router.post("/prune", response_model=PruneResponse)
async def prune_executions(body: PruneRequest, runtime: RuntimeDep) -> Response:
    """Delete finished executions last updated more than ``older_than`` seconds ago (of
    ``workflow``, or of every workflow), with their events and schedule history, a batch per
    transaction. Running, paused and queued executions are never touched."""
    deleted = await prune(
        runtime.db,
        body.older_than,
        workflow=body.workflow,
        batch_size=runtime.options.retention.batch_size,
    )
    return model_response(PruneResponse(deleted=deleted))
