"""ASGI middleware in front of every route: protocol version check and request size limit.

- A request whose ``X-Flux-Protocol`` header has another major version gets 426, with a
  message naming both versions. A request without the header (curl, a browser) is served.
- A body larger than ``max_request_bytes`` gets 413, whether announced by Content-Length or
  discovered while streaming.
- Every answer carries the server's ``X-Flux-Protocol``.

:meth:`GuardMiddleware.check` judges a request from its headers and URL, for this middleware
and for the fast path (:mod:`flux_server.fastpath`), which stands in front of it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from flux.errors import ProtocolError
from flux.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, check_compatible
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["VERSION_HEADER", "Answer", "GuardMiddleware", "send_json"]

_HEADER = PROTOCOL_HEADER.lower().encode()
_VERSION = VERSION_HEADER = (_HEADER, PROTOCOL_VERSION.encode())
"""The header every answer carries."""


def _tag(message: Message) -> None:
    message["headers"] = [*message.get("headers", []), _VERSION]


Answer = Callable[[Send], Awaitable[None]]
"""A refusal made before any route: sends its whole answer."""


class GuardMiddleware:
    def __init__(self, app: ASGIApp, max_request_bytes: int) -> None:
        self.app = app
        self.limit = max_request_bytes
        self._versions: dict[bytes, dict[str, Any] | None] = {}
        """The refusal of each ``X-Flux-Protocol`` value seen lately (``None``: compatible)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.check(scope)
        if refusal is not None:
            await refusal(send)
            return

        received = 0
        too_large = False
        started = False

        async def guarded_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    too_large = True
                    # The app sees the client go away; its answer is replaced by a 413 below.
                    return {"type": "http.disconnect"}
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal started
            if too_large:
                return
            if message["type"] == "http.response.start":
                started = True
                _tag(message)
            await send(message)

        try:
            await self.app(scope, guarded_receive, tagged_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await send_json(send, 413, self._too_large_body())

    def check(self, scope: Scope) -> Answer | None:
        """The guard's answer to an HTTP request from its headers and URL alone (426, 413 or
        400); ``None`` when it may go on. A body that announces no length is watched while
        it streams (:meth:`__call__`), which this cannot tell."""
        length = None
        for key, value in scope["headers"]:
            if key == _HEADER:
                problem = self._version_problem(value)
                if problem is not None:
                    return partial(send_json, status=426, body=problem)
            elif key == b"content-length":
                length = value
        if length is not None and length.isdigit() and int(length) > self.limit:
            return partial(send_json, status=413, body=self._too_large_body())
        if b"%00" in scope.get("raw_path", b"") or b"%00" in scope.get("query_string", b""):
            body = {
                "type": "UsageError",
                "code": "usage_error",
                "message": "the URL contains a NUL character (%00), which no name or id can hold",
                "details": {},
            }
            return partial(send_json, status=400, body=body)
        return None

    @staticmethod
    def bounded(scope: Scope) -> bool:
        """Whether the request's body announces its length (so the server reads no more than
        that, and :meth:`check` has judged it): no body of it needs watching."""
        length = False
        for key, _ in scope["headers"]:
            if key == b"content-length":
                length = True
            elif key == b"transfer-encoding":
                return False
        return length

    @staticmethod
    def tagging(send: Send) -> Send:
        """``send``, with the server's ``X-Flux-Protocol`` on the answer."""

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                _tag(message)
            await send(message)

        return tagged

    def _version_problem(self, value: bytes) -> dict[str, Any] | None:
        versions = self._versions
        if value in versions:
            return versions[value]
        problem: dict[str, Any] | None = None
        try:
            check_compatible(value.decode("latin-1"), peer="client")
        except ProtocolError as exc:
            problem = exc.to_dict()
        if len(versions) >= 64:
            versions.clear()
        versions[value] = problem
        return problem

    def _too_large_body(self) -> dict[str, Any]:
        return {
            "type": "ApiError",
            "code": "too_large",
            "message": f"request body larger than the server's limit of {self.limit} bytes "
            "(server.max_request_bytes)",
            "details": {"limit": self.limit},
        }


async def send_json(
    send: Send,
    status: int,
    body: dict[str, Any],
    headers: Sequence[tuple[bytes, bytes]] = (_VERSION,),
) -> None:
    """Answer a request from ASGI middleware, before any route: ``body`` as JSON, with
    ``headers`` after the content type and length."""
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
