"""The tools flux-mcp offers, one module per resource of the Flux server."""

from __future__ import annotations

from flux_mcp.tools import executions, runs, schedules, workers, workflows
from flux_mcp.tools._box import Toolbox

__all__ = ["Toolbox", "register_tools"]


def register_tools(box: Toolbox) -> None:
    """Register every tool (only the read-only ones in read-only mode)."""
    workflows.register(box)
    runs.register(box)
    executions.register(box)
    schedules.register(box)
    workers.register(box)
