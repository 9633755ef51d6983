"""A short way through the server for the two busiest calls: a worker's ``POST
/workers/{name}/checkpoints`` and a client's ``POST /workflows/{name}/run/{sync|async}``.

Every completed task ends up in a checkpoint batch and every execution starts with a run
request, so their cost bounds tasks/s and workflows/s. Through FastAPI a request walks the
exception middlewares, the router's list of routes, dependency solving and the body
validation wrappers before the store sees it; for a small checkpoint batch that took about as
much CPU as storing it. This ASGI middleware answers such a request itself when everything is
ordinary. Whatever is not (a bad token, a body that does not validate, an unknown workflow, any
error before something is stored, which then rolled back) goes to the application unchanged,
the body replayed, so every refusal is exactly the route's. A failure after the run request
created its execution is answered by the application's own error handler for it.

The routes stay the documented ones (OpenAPI, tests against the app). The middleware sits
inside :class:`~flux_server.guard.GuardMiddleware`, so the version check, the size limit and
the version header apply as before.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from flux.protocol import CheckpointBatchRequest, CheckpointBatchResponse, RunMode
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flux_server.api.deps import body_value, parse_json
from flux_server.api.executions import answer_run

__all__ = ["FastPathMiddleware"]

_JSON = b"application/json"
_Handler = Callable[[Scope, bytes, str, str], Awaitable[Response | None]]


class FastPathMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _route(scope) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        handler, name, mode = route
        body = await _read_body(receive)
        if body is None:  # the client went away (or the guard found the body too large)
            return
        response = await handler(scope, body, name, mode)
        if response is None:
            await self.app(scope, _replay(body, receive), send)
            return
        await response(scope, receive, send)


def _route(scope: Scope) -> tuple[_Handler, str, str] | None:
    """The fast handler for this request and its path's name and mode, if it has one."""
    if (
        scope["method"] != "POST"
        or scope.get("query_string")
        or b"%" in scope.get("raw_path", b"%")
    ):
        return None  # a query string or an escaped name: the route parses those
    match = _PATHS.fullmatch(scope["path"])
    if match is None:
        return None
    if match["worker"] is not None:
        return _checkpoints, match["worker"], ""
    return _run, match["workflow"], match["mode"]


_PATHS = re.compile(
    r"/workers/(?P<worker>[^/]+)/checkpoints"
    r"|/workflows/(?P<workflow>[^/]+)/run/(?P<mode>sync|async)"
)


async def _checkpoints(scope: Scope, body: bytes, name: str, _: str) -> Response | None:
    headers = dict(scope["headers"])
    if headers.get(b"content-type", b"").split(b";")[0].strip() != _JSON:
        return None
    runtime: Any = scope["app"].state.runtime
    authorization = headers.get(b"authorization")
    try:
        await runtime.authenticator.check_session(
            name, None if authorization is None else authorization.decode("latin-1")
        )
        request = _checkpoint_batch(body)
        results = await runtime.executions.checkpoint_many(name, request.items)
    except Exception:
        return None  # the store rolled back: the route does it again and answers
    answer = CheckpointBatchResponse(results=results).model_dump_json()
    return Response(answer, media_type="application/json")


def _checkpoint_batch(body: bytes) -> CheckpointBatchRequest:
    """The batch, read by pydantic's JSON parser straight into the models (half the CPU of
    parsing to Python values first). That parser takes NaN and Infinity, which
    :func:`parse_json` refuses, so a body that may hold one takes the long way.

    Raises:
        ValueError: it is not a valid batch (the route answers it).
    """
    if b"NaN" in body or b"Infinity" in body:  # in a string too: then only slower
        return CheckpointBatchRequest.model_validate(parse_json(body))
    return CheckpointBatchRequest.model_validate_json(body)


async def _run(scope: Scope, body: bytes, name: str, mode: str) -> Response | None:
    runtime: Any = scope["app"].state.runtime
    try:
        value = body_value(body)
        workflow = await runtime.workflows.latest(name)
        status = await runtime.executions.create(workflow, value, None)
    except Exception:
        return None  # nothing was created: the route does it again and answers
    try:
        return await answer_run(runtime, status, RunMode(mode), detailed=False)
    except Exception as exc:  # created: answer as the application would, never run it twice
        return await _error_answer(scope, exc)


async def _error_answer(scope: Scope, exc: Exception) -> Response:
    handlers = scope["app"].exception_handlers
    handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
    response = handler(Request(scope), exc)
    return await response if isinstance(response, Awaitable) else response


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
