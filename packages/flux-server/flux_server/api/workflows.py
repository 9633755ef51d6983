"""``/workflows``: register, list and describe workflows."""

from __future__ import annotations

from fastapi import APIRouter, File, UploadFile
from flux.errors import UsageError
from flux.protocol import WorkflowDetail, WorkflowSummary

from flux_server.api.deps import FluxRoute, RuntimeDep
from flux_server.source import read_workflows, source_hash

__all__ = ["router"]

router = APIRouter(prefix="/workflows", tags=["workflows"], route_class=FluxRoute)


@router.post("", response_model=list[WorkflowSummary])
async def register_workflows(
    runtime: RuntimeDep, file: UploadFile = File(description="A Python file of workflows")
) -> list[WorkflowSummary]:
    """Register every workflow the uploaded file defines (read statically, never executed).

    A workflow whose source changed gets a new version; an identical upload keeps the version.
    A ``schedule=`` option creates or updates the ``<name>_auto`` schedule; without it, that
    schedule is removed (see ``scheduling.auto_schedule_*``).
    """
    raw = await file.read()
    try:
        source = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(
            f"{file.filename or 'the upload'} is not UTF-8 text; upload a Python source file"
        ) from None
    definitions = read_workflows(source, file.filename or "<upload>")
    summaries = await runtime.workflows.register(definitions, source, source_hash(source))
    await runtime.schedules.sync_auto(definitions)
    return summaries


@router.get("", response_model=list[WorkflowSummary])
async def list_workflows(runtime: RuntimeDep) -> list[WorkflowSummary]:
    """The latest version of every workflow."""
    return await runtime.workflows.list()


@router.get("/{name}", response_model=WorkflowDetail)
async def get_workflow(name: str, runtime: RuntimeDep) -> WorkflowDetail:
    """The latest version with its source, and the list of all versions."""
    return await runtime.workflows.get(name)
