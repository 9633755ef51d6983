"""``GET /health``."""

from __future__ import annotations

from fastapi import APIRouter
from flux.protocol import PROTOCOL_VERSION, HealthResponse

from flux_server.api.deps import FluxRoute, RuntimeDep
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
