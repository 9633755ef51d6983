"""``GET /metrics``: the server's Prometheus metrics (:mod:`flux_server.metrics`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from flux.errors import NotFoundError
from starlette.responses import Response

from flux_server.api.deps import FluxRoute, RuntimeDep

__all__ = ["router"]

router = APIRouter(tags=["health"], route_class=FluxRoute)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {}, "application/openmetrics-text": {}},
            "description": "the metrics, in the format the Accept header asks for",
        },
        404: {"description": "metrics are off (server.metrics = false)"},
    },
)
async def metrics(runtime: RuntimeDep, request: Request) -> Response:
    """Executions started and finished, their durations, dispatch latency and schedule fires
    (counted by this replica), and executions per state, workers alive and their slots (read
    from the database), in the Prometheus text format or OpenMetrics. docs/operations.md
    lists every metric."""
    if runtime.metrics is None:
        raise NotFoundError("metrics are off on this server (server.metrics = false)")
    body, media_type = await runtime.metrics.exposition(request.headers.get("accept", ""))
    return Response(body, media_type=media_type)
