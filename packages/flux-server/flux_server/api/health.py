"""``GET /health``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from flux.protocol import PROTOCOL_VERSION, HealthResponse

from flux_server.api.deps import FluxRoute, RuntimeDep

__all__ = ["router"]

router = APIRouter(tags=["health"], route_class=FluxRoute)

try:
    _VERSION = version("flux-server")
except PackageNotFoundError:  # running from a source tree without metadata
    _VERSION = "0+unknown"


@router.get("/health", response_model=HealthResponse)
async def health(runtime: RuntimeDep) -> HealthResponse:
    """Liveness of the server and its database."""
    await runtime.db.ping()
    return HealthResponse(
        version=_VERSION, protocol_version=PROTOCOL_VERSION, database=runtime.db.dialect
    )
