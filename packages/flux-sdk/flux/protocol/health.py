"""``GET /health``."""

from __future__ import annotations

from typing import Literal

from flux.protocol._base import WireModel

__all__ = ["HealthResponse"]


class HealthResponse(WireModel):
    status: Literal["ok"] = "ok"
    version: str
    """The server package version."""
    protocol_version: str
    database: str
    """The database backend: ``sqlite`` or ``postgresql``."""
