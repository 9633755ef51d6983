"""``GET /health`` (the process answers) and ``GET /ready`` (it should get traffic)."""

from __future__ import annotations

from fastapi import APIRouter
from flux.protocol import PROTOCOL_VERSION, HealthResponse, ReadyResponse
from starlette.responses import Response

from flux_server.api.deps import FluxRoute, RuntimeDep, model_response
from flux_server.version import SERVER_VERSION

__all__ = ["router"]

router = APIRouter(tags=["health"], route_class=FluxRoute)


@router.get("/health", response_model=HealthResponse)
async def health(runtime: RuntimeDep) -> HealthResponse:
    """Liveness of the server and its database."""
    await runtime.db.ping()
    return HealthResponse(
        version=SERVER_VERSION, protocol_version=PROTOCOL_VERSION, database=runtime.db.dialect
    )


@router.get(
    "/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "not ready: see `checks`"}},
)
async def ready(runtime: RuntimeDep) -> Response:
    """Readiness for a load balancer: the database answers, its schema is at this server's
    migration head, and the server is not shutting down. 503 otherwise, naming the check."""
    checks = await runtime.readiness()
    ok = all(v == "ok" for v in checks.values())
    answer = ReadyResponse(status="ready" if ok else "not_ready", checks=checks)
    return model_response(answer, status_code=200 if ok else 503)
