"""The MCP server: :func:`build_server` puts the tools, resources and prompt of flux-mcp on an
:class:`mcp.server.MCPServer` bound to a Flux server's client (:mod:`flux_mcp.serving` runs
it on the configured transport).
"""

from __future__ import annotations

import logging
from typing import Literal

import flux
from flux.client import AsyncFluxClient
from mcp.server import MCPServer

from flux_mcp.config import McpConfig
from flux_mcp.prompts import register_prompts
from flux_mcp.resources import register_resources
from flux_mcp.security import inbound_auth
from flux_mcp.tools import Toolbox, register_tools

__all__ = ["INSTRUCTIONS", "LogLevel", "build_server", "flux_client"]

_log = logging.getLogger("flux_mcp")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

INSTRUCTIONS = """\
Flux runs durable Python workflows on a server and its workers.
Typical use: list_workflows, then get_workflow_details to read a workflow's source and learn its \
input; execute_workflow_sync to run it and wait (execute_workflow_async to start it only); \
get_execution_status to see a result later. An execution that waits for human input is PAUSED: \
its pauses say what they expect; answer with resume_workflow_sync. A FAILED execution's error \
says why; get_execution_events (types TASK_FAILED, WORKFLOW_FAILED, payloads true) shows where. \
Every answer has next_step: what can be done now."""


def flux_client(config: McpConfig) -> AsyncFluxClient:
    """The client flux-mcp calls the Flux server with, carrying its own credential."""
    return AsyncFluxClient(config.server_url, api_key=config.api_key)


def build_server(
    config: McpConfig, client: AsyncFluxClient | None = None, *, log_level: LogLevel = "INFO"
) -> MCPServer:
    """An MCP server offering flux-mcp's tools, resources and prompt against the Flux server
    of ``client`` (by default one for ``config.server_url``). With ``config.read_only`` it
    offers only the tools that change nothing. The caller owns ``client`` and closes it.
    ``log_level`` is the HTTP transports' (uvicorn's: INFO logs a line per request)."""
    auth = inbound_auth(config)
    server: MCPServer = MCPServer(
        config.name,
        title="Flux workflows",
        instructions=INSTRUCTIONS,
        version=flux.__version__,
        token_verifier=None if auth is None else auth[0],
        auth=None if auth is None else auth[1],
        log_level=log_level,
    )
    client = client or flux_client(config)
    register_tools(Toolbox(server, client, config))
    register_resources(server, client)
    register_prompts(server, client)
    return server
