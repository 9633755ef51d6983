"""``POST /workers/{name}/progress/{execution_id}`` (protocol 1.10): what a held execution's
tasks published, for the execution's open streams (:mod:`flux_server.progress`)."""

from __future__ import annotations

from fastapi import APIRouter
from flux.errors import ApiError
from flux.protocol import MAX_PROGRESS_BYTES, ProgressBatch, ProgressResponse, TaskProgressFrame
from pydantic_core import to_json
from starlette.responses import Response

from flux_server.api.deps import FluxRoute, RuntimeDep, WorkerName, model_response

__all__ = ["router"]

router = APIRouter(prefix="/workers", tags=["workers"], route_class=FluxRoute)


@router.post("/{name}/progress/{execution_id}", response_model=ProgressResponse)
async def post_progress(
    name: WorkerName, execution_id: str, body: ProgressBatch, runtime: RuntimeDep
) -> Response:
    """Send each item to every open stream of the execution (here or on another replica) as
    a ``task.progress`` frame; nothing is stored, and with no stream open nothing happens.

    403 when the worker does not hold the execution, 413 when a value is over 64 KiB as JSON.
    ``listening`` says whether a stream may be open: while not, the worker may hold back.
    """
    for item in body.items:
        size = len(to_json(item.value))
        if size > MAX_PROGRESS_BYTES:
            raise ApiError(
                f"a progress value of task {item.task!r} is {size} bytes as JSON, over the "
                f"limit of {MAX_PROGRESS_BYTES} (64 KiB)",
                413,
            )
    elsewhere = not runtime.db.is_sqlite  # another replica may have a stream open
    if not (elsewhere or runtime.progress.streams(execution_id)):
        return model_response(ProgressResponse(listening=False))
    if not await runtime.executions.holds(name, execution_id):
        raise ApiError(
            f"worker {name!r} does not hold execution {execution_id!r}; only the worker "
            "running it publishes its progress",
            403,
        )
    runtime.progress.publish(
        [
            TaskProgressFrame(
                execution_id=execution_id,
                task=item.task,
                value=item.value,
                timestamp=item.timestamp,
            )
            for item in body.items
        ]
    )
    return model_response(ProgressResponse(listening=True))
