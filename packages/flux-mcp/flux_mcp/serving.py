"""Running flux-mcp: :func:`serve` checks that the configuration leaves nothing open, then
builds the server and runs it on the configured transport until interrupted.

The checks come before the MCP SDK is imported (about a second), so a refused start answers
at once.
"""

from __future__ import annotations

import logging
from typing import cast

from flux_mcp.config import McpConfig
from flux_mcp.security import check_exposure, transport_security

__all__ = ["serve"]

_log = logging.getLogger("flux_mcp")


def serve(config: McpConfig, *, log_level: str = "INFO") -> None:
    """Run flux-mcp on ``config.transport`` until interrupted.

    Raises:
        flux.errors.UsageError: an HTTP transport would be reachable from other machines
            without authentication, or needs bearer tokens the Flux server cannot check
            (see :func:`flux_mcp.security.check_exposure`).
    """
    check_exposure(config)
    from flux_mcp.server import LogLevel, build_server

    server = build_server(config, log_level=cast(LogLevel, log_level.upper()))
    if config.transport == "stdio":
        _log.info("serving on stdio for the Flux server at %s", config.server_url)
        server.run("stdio")
        return
    security = transport_security(config)
    _log.info(
        "serving %s on %s:%d for the Flux server at %s; bearer tokens %s; accepted Host values: %s",
        config.transport,
        config.host,
        config.port,
        config.server_url,
        "required" if config.checks_tokens else "not checked",
        ", ".join(security.allowed_hosts),
    )
    if config.transport == "sse":
        server.run(
            "sse",
            host=config.host,
            port=config.port,
            transport_security=security,
            max_request_body_size=config.max_request_bytes,
        )
    else:
        server.run(
            "streamable-http",
            host=config.host,
            port=config.port,
            transport_security=security,
            max_request_body_size=config.max_request_bytes,
        )
