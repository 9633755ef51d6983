"""A short way through the server for the two busiest calls: a worker's ``POST
/workers/{name}/checkpoints`` and a client's ``POST /workflows/{name}/run/{sync|async}``.

Every completed task ends up in a checkpoint batch and every execution starts with a run
request, so their cost bounds tasks/s and workflows/s. Through FastAPI a request walks the
exception middlewares, the router's list of routes, dependency solving and the body
validation wrappers before the store sees it; for a small checkpoint batch that took about as
much CPU as storing it. This ASGI middleware answers such a request itself when everything is
ordinary. Whatever is not (a query string other than a run's ``execution_id``, a bad token,
a body that does not validate, an unknown workflow, any error before something is stored,
which then rolled back) goes to the application unchanged, the body replayed, so every
refusal is exactly the route's; each such fallback is logged at DEBUG on
``flux.server.fastpath`` with its reason. A failure after the run request created its
execution is answered by the application's own error handler for it.

The routes stay the documented ones (OpenAPI, tests against the app), and :data:`ROUTES`
names the ones shadowed here, so a test holds them to the app's. The middleware sits in
front of :class:`~flux_server.guard.GuardMiddleware` and
:class:`~flux_server.gate.GateMiddleware` and asks their checks itself, so the version check,
the size limit, the version header and every check of who may call apply as on the route,
without two more layers around each request (what that saves: docs/benchmarks.md). A
request it hands on after all (a fallback) meets those checks again on its way to the route.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import cast

from flux.observability import TRACEPARENT
from flux.protocol import (
    EXECUTION_ID_PATTERN,
    CheckpointBatchRequest,
    CheckpointBatchResponse,
    ExecutionStatus,
    RunMode,
)
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, HTTPExceptionHandler, Message, Receive, Scope, Send

from flux_server.api.deps import body_value, parse_json
from flux_server.api.executions import answer_run
from flux_server.gate import GateMiddleware
from flux_server.guard import VERSION_HEADER, GuardMiddleware
from flux_server.runtime import Runtime

__all__ = ["ROUTES", "FastPathMiddleware", "FastRoute"]

log = logging.getLogger("flux.server.fastpath")

_JSON = b"application/json"
_TRACEPARENT = TRACEPARENT.encode()

_Reason = str | Exception
"""Why a request goes on to the route instead (an exception: what refused it)."""
_Handler = Callable[[Scope, bytes, tuple[str, ...]], Awaitable[Response | _Reason]]
"""Answers a request from its scope, its body and its path parameters in template order,
or says why the route must."""


@dataclass(frozen=True, kw_only=True)
class FastRoute:
    """A route of the application that the fast path answers when all is ordinary.

    Attributes:
        method: the route's HTTP method.
        template: the route's path exactly as the application declares it.
        request_model: the model the body is parsed into; ``None``: any JSON value, an empty
            body being ``null`` (:func:`~flux_server.api.deps.body_value`).
        response_model: the model of the answer.
        only: path parameters answered here for these values only; others go to the route.
        query: whether the handler reads the query string itself (else a request with one
            goes to the route).
        handler: answers a request, or says why the route must.
    """

    method: str
    template: str
    request_model: type[BaseModel] | None
    response_model: type[BaseModel]
    only: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    query: bool = False
    handler: _Handler = field(repr=False, compare=False)

    @property
    def parameters(self) -> tuple[str, ...]:
        """The template's path parameters, in order."""
        return tuple(_PARAMETER.findall(self.template))


_PARAMETER = re.compile(r"\{(\w+)\}")


class FastPathMiddleware:
    """Answers the requests of :data:`ROUTES` when all is ordinary; passes every other on to
    ``app``: the guard, which wraps the gate, which wraps the application.

    It sits in front of both and asks them itself (:meth:`GuardMiddleware.check`,
    :meth:`GateMiddleware.check`), so a fast request passes through no middleware of theirs:
    whatever they answer is theirs, and an answer here carries the guard's version header. A
    request whose body announces no length goes their way, where the guard watches it."""

    def __init__(self, app: ASGIApp, guard: GuardMiddleware, gate: GateMiddleware) -> None:
        self.app = app
        self.guard = guard
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _find(scope) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        if not self.guard.bounded(scope):
            _fall_back(scope, "a body of unannounced length (the guard watches it)")
            await self.app(scope, receive, send)
            return
        refusal = self.guard.check(scope)
        if refusal is not None:
            await refusal(send)
            return
        refusal = await self.gate.check(scope)
        if refusal is not None:
            await refusal(self.guard.tagging(send))
            return
        route, parameters = found
        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        answer = await route.handler(scope, body, parameters)
        if isinstance(answer, Response):
            answer.raw_headers.append(VERSION_HEADER)
            await answer(scope, receive, send)
            return
        _fall_back(scope, answer)
        await self.app(scope, _replay(body, receive), send)


def _find(scope: Scope) -> tuple[FastRoute, tuple[str, ...]] | None:
    """The fast route of this request and its path parameters, if it has one."""
    paths = _BY_METHOD.get(scope["method"])
    if paths is None:
        return None
    pattern, alternatives = paths
    match = pattern.fullmatch(scope["path"])
    if match is None:
        return None
    route, parameters = alternatives[match.lastindex or 0]
    if scope.get("query_string") and not route.query:
        _fall_back(scope, "a query string (the route parses it)")
        return None
    if b"%" in scope.get("raw_path", b"%"):
        _fall_back(scope, "an escaped path (the route unescapes it)")
        return None
    return route, match.groups()[parameters]


def _fall_back(scope: Scope, reason: _Reason) -> None:
    if not log.isEnabledFor(logging.DEBUG):
        return
    if isinstance(reason, Exception):
        # The first line only: a validation error spans one line per error.
        text = str(reason).partition("\n")[0]
        reason = f"{type(reason).__name__}: {text}" if text else type(reason).__name__
    log.debug("%s %r goes on to the route: %s", scope["method"], scope["path"], reason)


async def _checkpoints(
    scope: Scope, body: bytes, parameters: tuple[str, ...]
) -> Response | _Reason:
    (name,) = parameters
    headers = dict(scope["headers"])
    if headers.get(b"content-type", b"").split(b";")[0].strip() != _JSON:
        return "the body is not application/json"
    runtime = _runtime(scope)
    authorization = headers.get(b"authorization")
    try:
        await runtime.authenticator.check_session(
            name, None if authorization is None else authorization.decode("latin-1")
        )
        request = _checkpoint_batch(body)
        results = await runtime.executions.checkpoint_many(name, request.items)
    except Exception as exc:
        return exc  # the store rolled back: the route does it again and answers
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


async def _run(scope: Scope, body: bytes, parameters: tuple[str, ...]) -> Response | _Reason:
    name, mode = parameters
    execution_id = None
    if query := scope.get("query_string"):
        execution_id = _chosen_id(query)
        if execution_id is None:
            return "a query string (the route parses it)"
    runtime = _runtime(scope)
    try:
        value = body_value(body)
        workflow = await runtime.workflows.latest(name)
        caller = next((v for k, v in scope["headers"] if k == _TRACEPARENT), None)
        status = await runtime.executions.create(workflow, value, execution_id, caller_trace=caller)
    except Exception as exc:
        return exc  # nothing was created: the route does it again and answers
    try:
        return await answer_run(runtime, status, RunMode(mode), detailed=False)
    except Exception as exc:  # created: answer as the application would, never run it twice
        return await _error_answer(scope, exc)


_CHOSEN_ID = re.compile(EXECUTION_ID_PATTERN.removeprefix("^").removesuffix("$"))


def _chosen_id(query: bytes) -> str | None:
    """The id of ``execution_id=<id>`` when that is the whole query string and the id is one a
    client may choose (:data:`~flux.protocol.EXECUTION_ID_PATTERN`, which needs no escaping
    in a URL); else ``None``."""
    key, _, value = query.partition(b"=")
    if key != b"execution_id":
        return None
    text = value.decode("latin-1")
    return text if _CHOSEN_ID.fullmatch(text) else None


def _runtime(scope: Scope) -> Runtime:
    runtime: Runtime = scope["app"].state.runtime
    return runtime


async def _error_answer(scope: Scope, exc: Exception) -> Response:
    app: Starlette = scope["app"]
    handlers = app.exception_handlers
    found = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
    # An HTTP request: its handlers are HTTP ones (Starlette types them with WebSocket's too).
    handler = cast(HTTPExceptionHandler, found)
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


ROUTES: tuple[FastRoute, ...] = (
    FastRoute(
        method="POST",
        template="/workers/{name}/checkpoints",
        request_model=CheckpointBatchRequest,
        response_model=CheckpointBatchResponse,
        handler=_checkpoints,
    ),
    FastRoute(
        method="POST",
        template="/workflows/{name}/run/{mode}",
        request_model=None,
        response_model=ExecutionStatus,
        only={"mode": (RunMode.SYNC.value, RunMode.ASYNC.value)},
        query=True,
        handler=_run,
    ),
)
"""The routes the fast path answers; each one's docstring in ``flux_server.api`` says so."""


def _compile(
    routes: tuple[FastRoute, ...],
) -> tuple[re.Pattern[str], dict[int, tuple[FastRoute, slice]]]:
    """One pattern for all the templates (one match per request), each an alternative in a
    group of its own, and by that group's number: the route and the slice of
    ``match.groups()`` that holds its path parameters."""
    alternatives: list[str] = []
    by_group: dict[int, tuple[FastRoute, slice]] = {}
    group = 0
    for route in routes:
        if unknown := set(route.only) - set(route.parameters):
            raise ValueError(f"{route.template!r} has no parameters {sorted(unknown)}")
        alternatives.append(f"({_pattern(route)})")
        by_group[group + 1] = (route, slice(group + 1, group + 1 + len(route.parameters)))
        group += 1 + len(route.parameters)
    return re.compile("|".join(alternatives)), by_group


def _pattern(route: FastRoute) -> str:
    pieces = _PARAMETER.split(route.template)  # text, parameter, text, ..., text
    parts: list[str] = []
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            parts.append(re.escape(piece))
        elif piece in route.only:
            parts.append("(" + "|".join(map(re.escape, route.only[piece])) + ")")
        else:
            parts.append("([^/]+)")
    return "".join(parts)


# An alternative's own group closes after its parameters' groups: ``match.lastindex`` is it.
_BY_METHOD = {
    method: _compile(tuple(r for r in ROUTES if r.method == method))
    for method in {route.method for route in ROUTES}
}
