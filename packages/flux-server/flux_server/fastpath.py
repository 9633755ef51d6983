"""A short way through the server for the busiest worker call, ``POST
/workers/{name}/checkpoints``.

Every completed task of every execution ends up in one of these requests, so their cost bounds
tasks/s. Through FastAPI a request walks the exception middlewares, the router's list of routes,
dependency solving and body validation wrappers before the store sees it; for a small batch
that took about as much CPU as storing it. This ASGI middleware answers the request itself when
everything is ordinary: a JSON body that validates, a session token that checks out, a store
call that succeeds. Anything else (a bad token, a body that does not validate, an error from the
store, which rolls back) is handed to the application unchanged, the body replayed, so every
error answer is exactly the one the route gives. The route stays the documented one (OpenAPI,
tests against the app); the middleware sits inside :class:`~flux_server.guard.GuardMiddleware`,
so the version check, the size limit and the version header apply as before.
"""

from __future__ import annotations

import re
from typing import Any

from flux.protocol import CheckpointBatchRequest, CheckpointBatchResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flux_server.api.deps import parse_json

__all__ = ["FastPathMiddleware"]

_CHECKPOINTS = re.compile(r"/workers/([^/]+)/checkpoints")
_JSON = b"application/json"


class FastPathMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _CHECKPOINTS.fullmatch(scope["path"])
        if match is None or "%" in scope.get("raw_path", b"").decode("latin-1"):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        answer = await _checkpoints(scope, match.group(1), body)
        if answer is None:
            await self.app(scope, _replay(body, receive), send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", _JSON),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


async def _checkpoints(scope: Scope, name: str, body: bytes) -> bytes | None:
    """The answer's body, or ``None`` when the application should answer instead (nothing was
    stored then)."""
    headers = dict(scope["headers"])
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip()
    if content_type != _JSON:
        return None
    runtime: Any = scope["app"].state.runtime
    authorization = headers.get(b"authorization")
    try:
        await runtime.authenticator.check_session(
            name, None if authorization is None else authorization.decode("latin-1")
        )
        request = CheckpointBatchRequest.model_validate(parse_json(body))
        results = await runtime.executions.checkpoint_many(name, request.items)
    except Exception:
        return None
    return CheckpointBatchResponse(results=results).model_dump_json().encode()


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
