"""Tools that read executions: ``get_execution_status``, ``list_executions`` and
``get_execution_events``.

None of them returns a whole history: listings are paged, events come a page at a time and
without their values unless asked, so an answer fits in a model's context.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from flux.domain import EventType, ExecutionState
from pydantic import Field

from flux_mcp.errors import flux_errors
from flux_mcp.results import (
    EventInfo,
    EventList,
    ExecutionList,
    ExecutionResult,
    ExecutionSummary,
    execution_result,
)
from flux_mcp.tools._box import READ, Toolbox
from flux_mcp.tools.runs import ExecutionId

__all__ = ["register"]


def register(box: Toolbox) -> None:
    flux = box.flux

    async def get_execution_status(execution_id: ExecutionId) -> ExecutionResult:
        """Show an execution: its state, input, and its output (COMPLETED), error (FAILED)
        or the pauses it waits at (PAUSED)."""
        with flux_errors():
            status = await flux.get_execution(execution_id)
        return execution_result(status)

    async def list_executions(
        workflow_name: Annotated[
            str | None, Field(min_length=1, description="only this workflow's executions")
        ] = None,
        state: Annotated[
            list[ExecutionState] | None, Field(description="only executions in these states")
        ] = None,
        created_after: Annotated[
            datetime | None,
            Field(description="only those created after this time (ISO 8601; UTC if naive)"),
        ] = None,
        created_before: Annotated[
            datetime | None, Field(description="only those created before this time")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="executions per page")] = 20,
        cursor: Annotated[
            str | None, Field(description="next_cursor of the previous page (same filters)")
        ] = None,
    ) -> ExecutionList:
        """List executions, newest first, a page at a time, with how many match per state.
        Read one with get_execution_status."""
        with flux_errors():
            page = await flux.list_executions(
                workflow=workflow_name,
                state=None if not state else [s.value for s in state],
                created_after=created_after,
                created_before=created_before,
                limit=limit,
                cursor=cursor,
            )
        return ExecutionList(
            executions=[ExecutionSummary.of(item) for item in page.items],
            counts={state.value: count for state, count in page.counts.items()},
            next_cursor=page.next_cursor,
        )

    async def get_execution_events(
        execution_id: ExecutionId,
        after: Annotated[
            int | None,
            Field(ge=0, description="next_after of the previous page, or an event's position"),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="events per page")] = 50,
        types: Annotated[
            list[EventType] | None,
            Field(description="only these event types, e.g. ['TASK_FAILED', 'WORKFLOW_FAILED']"),
        ] = None,
        payloads: Annotated[
            bool, Field(description="include each event's value (inputs, outputs, errors)")
        ] = False,
    ) -> EventList:
        """Read an execution's event log, oldest first, a page at a time: which tasks ran,
        retried, failed or paused, and when. Values are left out unless payloads is true."""
        with flux_errors():
            page = await flux.execution_events(
                execution_id,
                after=after,
                limit=limit,
                types=None if not types else [t.value for t in types],
                payloads=payloads,
            )
        return EventList(events=[EventInfo.of(e) for e in page.items], next_after=page.next_after)

    box.add(get_execution_status, title="Execution status", annotations=READ)
    box.add(list_executions, title="List executions", annotations=READ)
    box.add(get_execution_events, title="Execution events", annotations=READ)
