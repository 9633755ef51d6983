"""The ``debug_failed_execution`` prompt: the facts of a failure, gathered at once, and what to
do with them.

The prompt carries the execution's error and input, the failure events of its log with their
values, and the workflow's source, so the model starts from evidence rather than from a chain
of tool calls; it asks for an explanation and a fix, and for nothing to be run unasked.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from flux.client import AsyncFluxClient
from flux.errors import FluxError, NotFoundError
from mcp.server import MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.shared.exceptions import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS
from pydantic import Field

from flux_mcp.errors import tool_message
from flux_mcp.results import ExecutionResult, execution_result

__all__ = ["FAILURE_TYPES", "register_prompts"]

FAILURE_TYPES = [
    "TASK_FAILED",
    "TASK_RETRY_FAILED",
    "TASK_FALLBACK_FAILED",
    "TASK_ROLLBACK_FAILED",
    "WORKFLOW_FAILED",
]
"""The events that show where an execution went wrong."""

_MAX_EVENTS = 20
_MAX_SOURCE = 20_000


def register_prompts(server: MCPServer, flux: AsyncFluxClient) -> None:
    """Register ``debug_failed_execution`` on ``server``."""

    @server.prompt(
        name="debug_failed_execution",
        title="Debug a failed execution",
        description="Explain why an execution failed, from its error, failure events and "
        "workflow source, and propose a fix.",
    )
    async def debug_failed_execution(
        execution_id: Annotated[str, Field(description="the failed execution's id")],
    ) -> list[UserMessage]:
        try:
            status = await flux.get_execution(execution_id)
            events = await flux.execution_events(
                execution_id, limit=_MAX_EVENTS, types=FAILURE_TYPES, payloads=True
            )
            workflow = await flux.get_workflow(status.workflow_name)
        except NotFoundError as exc:
            raise MCPError(INVALID_PARAMS, tool_message(exc)) from None
        except FluxError as exc:
            raise MCPError(INTERNAL_ERROR, tool_message(exc)) from None
        result = execution_result(status)
        failures = [
            f"- {e.time.isoformat()} {e.type.value} {e.name} ({e.source_id}): {_json(e.view)}"
            for e in events.items
        ]
        source = workflow.source
        if len(source) > _MAX_SOURCE:
            source = source[:_MAX_SOURCE] + "\n# ... (cut: read flux://workflows/.../source)"
        version_note = (
            ""
            if workflow.version == status.workflow_version
            else f" This is version {workflow.version}; the execution ran version "
            f"{status.workflow_version}, whose source may differ."
        )
        text = "\n".join(
            [
                _headline(result),
                f"Input: {_json(result.input)}",
                "",
                "Failure events, oldest first:" if failures else "No failure events recorded.",
                *failures,
                "",
                f"Source of workflow {workflow.name!r}:{version_note}",
                "```python",
                source,
                "```",
                "",
                "Explain what failed and why, pointing at the lines of the source that caused "
                "it. Then propose a fix: a corrected workflow (to register with upload_workflow) "
                "or a different input. Do not upload or run anything until the user agrees; "
                "get_execution_events with payloads=true shows the rest of the log if needed.",
            ]
        )
        return [UserMessage(text)]


def _headline(result: ExecutionResult) -> str:
    head = (
        f"Execution {result.execution_id} of workflow {result.workflow!r} "
        f"(version {result.workflow_version}) is {result.state.value}"
    )
    if result.error is not None:
        return f"{head}: {result.error.type}: {result.error.message}"
    return f"{head} (it has not failed: say so, and explain its state instead)."


def _json(value: Any) -> str:
    return json.dumps(value, default=str)
