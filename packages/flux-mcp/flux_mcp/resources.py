"""MCP resources: an execution, its events and a workflow's source, for clients that attach
context by URI instead of calling a tool.

- ``flux://executions/{execution_id}``: the execution as ``get_execution_status`` answers it;
- ``flux://executions/{execution_id}/events``: its first events (up to 200, without values)
  as ``get_execution_events`` answers them, ``next_after`` saying where to go on;
- ``flux://workflows/{workflow_name}/source``: the Python source of the latest version.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flux.client import AsyncFluxClient
from flux.errors import FluxError, NotFoundError
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from flux_mcp.errors import tool_message
from flux_mcp.results import EventInfo, EventList, execution_result

__all__ = ["EVENTS_IN_RESOURCE", "register_resources"]

EVENTS_IN_RESOURCE = 200


@contextmanager
def _resource_errors() -> Iterator[None]:
    try:
        yield
    except NotFoundError as exc:
        raise ResourceNotFoundError(tool_message(exc)) from None
    except FluxError as exc:
        raise ResourceError(tool_message(exc)) from None


def register_resources(server: MCPServer, flux: AsyncFluxClient) -> None:
    """Register the three resource templates on ``server``."""

    @server.resource(
        "flux://executions/{execution_id}",
        name="execution",
        title="Execution",
        description="An execution's state, input, output, error or waiting pauses.",
        mime_type="application/json",
    )
    async def execution(execution_id: str) -> str:
        with _resource_errors():
            status = await flux.get_execution(execution_id)
        return execution_result(status).model_dump_json(indent=2)

    @server.resource(
        "flux://executions/{execution_id}/events",
        name="execution_events",
        title="Execution events",
        description=f"An execution's first {EVENTS_IN_RESOURCE} events, without their values.",
        mime_type="application/json",
    )
    async def execution_events(execution_id: str) -> str:
        with _resource_errors():
            page = await flux.execution_events(execution_id, limit=EVENTS_IN_RESOURCE)
        events = EventList(events=[EventInfo.of(e) for e in page.items], next_after=page.next_after)
        return events.model_dump_json(indent=2, exclude_none=True)

    @server.resource(
        "flux://workflows/{workflow_name}/source",
        name="workflow_source",
        title="Workflow source",
        description="The Python source of a workflow's latest version.",
        mime_type="text/x-python",
    )
    async def workflow_source(workflow_name: str) -> str:
        with _resource_errors():
            detail = await flux.get_workflow(workflow_name)
        return detail.source
