"""What routes share: the runtime, worker authentication, bodies and answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from flux.errors import UsageError
from pydantic import BaseModel
from pydantic_core import from_json
from starlette.responses import Response

from flux_server.gate import principal_of
from flux_server.principals import Principal
from flux_server.rawjson import to_json
from flux_server.runtime import Runtime

__all__ = [
    "JSON_BODY",
    "CallerDep",
    "FluxRoute",
    "RuntimeDep",
    "WorkerName",
    "body_value",
    "get_runtime",
    "json_body",
    "json_response",
    "model_response",
    "parse_json",
]


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

CallerDep = Annotated[Principal, Depends(principal_of)]
"""Who made the request (:mod:`flux_server.gate`); anonymous while authentication is off."""


async def _worker_session(name: str, request: Request) -> str:
    runtime: Runtime = request.app.state.runtime
    await runtime.authenticator.check_session(name, request.headers.get("authorization"))
    return name


WorkerName = Annotated[str, Depends(_worker_session)]
"""The ``{name}`` path parameter, once its session token checked out (401/403 otherwise)."""


def parse_json(raw: bytes) -> Any:
    """Strict JSON: no NaN or Infinity, no lone surrogates (nothing a database or a JSON answer
    could not hold).

    Raises:
        json.JSONDecodeError: it is not such JSON.
    """
    try:
        return from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        raise json.JSONDecodeError(str(exc), raw.decode(errors="replace"), 0) from None


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class FluxRoute(APIRoute):
    """Routes whose JSON bodies are read by :func:`parse_json` (FastAPI's default is
    ``json.loads``, which lets NaN and lone surrogates through)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict_handler


async def json_body(request: Request) -> Any:
    """The raw body as any JSON value; an empty body is ``None``.

    Raises:
        UsageError: the body is not JSON.
    """
    return body_value(await request.body())


def body_value(raw: bytes) -> Any:
    """:func:`json_body` of a body already read.

    Raises:
        UsageError: the body is not JSON.
    """
    if not raw.strip():
        return None
    try:
        return parse_json(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"the request body must be JSON (the workflow's input): {exc.msg}"
        ) from None


JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "Any JSON value: the workflow's input (empty means null).",
        "content": {"application/json": {"schema": {}}},
    }
}
"""``openapi_extra`` for routes that read :func:`json_body`."""


def json_response(data: Any, status_code: int = 200) -> Response:
    """Plain values (JSON types, datetimes) straight to bytes, for the largest answers."""
    return Response(to_json(data), status_code, media_type="application/json")


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """Serialize straight to JSON bytes (one pass, no re-validation)."""
    return Response(model.model_dump_json(), status_code, media_type="application/json")
