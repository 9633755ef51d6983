"""Workflow tools: ``list_workflows``, ``get_workflow_details``, ``upload_workflow``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from flux_mcp.errors import flux_errors
from flux_mcp.results import UploadResult, WorkflowDetails, WorkflowInfo, WorkflowList
from flux_mcp.tools._box import READ, Toolbox, changes

__all__ = ["WorkflowName", "register"]

WorkflowName = Annotated[
    str, Field(min_length=1, description="a registered workflow's name (see list_workflows)")
]


def register(box: Toolbox) -> None:
    flux = box.flux

    async def list_workflows() -> WorkflowList:
        """List the registered workflows (the latest version of each), with the schedule,
        secrets and worker resources each declares."""
        with flux_errors():
            found = await flux.list_workflows()
        return WorkflowList(workflows=[WorkflowInfo.of(w) for w in found])

    async def get_workflow_details(workflow_name: WorkflowName) -> WorkflowDetails:
        """Show one workflow: the Python source of its latest version, its options and the
        list of its versions. Read the source to learn what input it expects."""
        with flux_errors():
            detail = await flux.get_workflow(workflow_name)
        return WorkflowDetails.of_detail(detail)

    async def upload_workflow(
        source: Annotated[
            str,
            Field(
                min_length=1,
                description="the Python source of a file that defines @workflow functions",
            ),
        ],
        filename: Annotated[
            str, Field(min_length=1, description="a name for the file, for messages")
        ] = "workflows.py",
    ) -> UploadResult:
        """Register every workflow defined in a Python file. A workflow whose source changed
        gets a new version; running executions finish on the version they started with.
        Workers run this code: upload only code the user asked for."""
        with flux_errors():
            registered = await flux.register_workflows(source.encode(), filename=filename)
        names = ", ".join(repr(w.name) for w in registered)
        return UploadResult(
            registered=[WorkflowInfo.of(w) for w in registered],
            next_step=f"Registered {names}: run one with execute_workflow_sync.",
        )

    box.add(list_workflows, title="List workflows", annotations=READ)
    box.add(get_workflow_details, title="Workflow details and source", annotations=READ)
    # Uploading the same source again changes nothing (no new version): idempotent.
    box.add(
        upload_workflow,
        title="Upload workflows",
        annotations=changes(destructive=False, idempotent=True),
    )
