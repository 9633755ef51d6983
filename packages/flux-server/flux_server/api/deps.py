"""What routes share: the runtime, worker authentication, bodies and answers."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from flux.errors import UsageError
from pydantic import BaseModel
from starlette.responses import Response

from flux_server.runtime import Runtime

__all__ = [
    "JSON_BODY",
    "RuntimeDep",
    "WorkerName",
    "get_runtime",
    "json_body",
    "model_response",
]


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def _worker_session(name: str, request: Request) -> str:
    runtime: Runtime = request.app.state.runtime
    await runtime.authenticator.check_session(name, request.headers.get("authorization"))
    return name


WorkerName = Annotated[str, Depends(_worker_session)]
"""The ``{name}`` path parameter, once its session token checked out (401/403 otherwise)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def json_body(request: Request) -> Any:
    """The raw body as any JSON value; an empty body is ``None``.

    Raises:
        UsageError: the body is not JSON.
    """
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise UsageError(f"the request body must be JSON (the workflow's input): {exc}") from None


JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "Any JSON value: the workflow's input (empty means null).",
        "content": {"application/json": {"schema": {}}},
    }
}
"""``openapi_extra`` for routes that read :func:`json_body`."""


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """Serialize straight to JSON bytes (one pass, no re-validation)."""
    return Response(model.model_dump_json(), status_code, media_type="application/json")
