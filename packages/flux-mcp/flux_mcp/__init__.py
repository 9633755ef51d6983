"""flux-mcp: an MCP server that lets an assistant list, upload, run, follow, resume and cancel
Flux workflows, talking to a Flux server only through :mod:`flux.client`.

Run it with ``flux start mcp`` or ``flux-mcp``; embed it with :func:`build_server`.
The names below load on first use: ``python -m flux_mcp --help`` does not import the MCP SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flux_mcp.config import McpConfig
    from flux_mcp.server import build_server, flux_client
    from flux_mcp.serving import serve

__all__ = ["McpConfig", "build_server", "flux_client", "serve"]

_HOMES = {
    "McpConfig": "flux_mcp.config",
    "build_server": "flux_mcp.server",
    "flux_client": "flux_mcp.server",
    "serve": "flux_mcp.serving",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'flux_mcp' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
