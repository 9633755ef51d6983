"""``GET /health``."""

from __future__ import annotations

from typing import Literal

from flux.protocol._base import WireModel

__all__ = ["HealthResponse", "ReadyResponse"]


class HealthResponse(WireModel):
    status: Literal["ok"] = "ok"
    version: str
    """The server package version."""
    protocol_version: str
    database: str
    """The database backend: ``sqlite`` or ``postgresql``."""


class ReadyResponse(WireModel):
    """``GET /ready``: whether this server should get traffic. 200 with ``ready``, else 503
    with ``not_ready``; ``checks`` says what each check found (``ok`` or why not)."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, str]
