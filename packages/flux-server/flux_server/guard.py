"""ASGI middleware in front of every route: protocol version check and request size limit.

- A request whose ``X-Flux-Protocol`` header has another major version gets 426, with a
  message naming both versions. A request without the header (curl, a browser) is served.
- A body larger than ``max_request_bytes`` gets 413, whether announced by Content-Length or
  discovered while streaming.
- Every answer carries the server's ``X-Flux-Protocol``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from flux.errors import ProtocolError
from flux.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, check_compatible
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["GuardMiddleware", "send_json"]

_HEADER = PROTOCOL_HEADER.lower().encode()
_VERSION = (_HEADER, PROTOCOL_VERSION.encode())


class GuardMiddleware:
    def __init__(self, app: ASGIApp, max_request_bytes: int) -> None:
        self.app = app
        self.limit = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        for key, value in scope["headers"]:
            if key == _HEADER:
                try:
                    check_compatible(value.decode("latin-1"), peer="client")
                except ProtocolError as exc:
                    body = exc.to_dict()
                    await send_json(send, 426, body)
                    return
            elif key == b"content-length":
                length = value
        if length is not None and length.isdigit() and int(length) > self.limit:
            await send_json(send, 413, self._too_large_body())
            return
        if b"%00" in scope.get("raw_path", b"") or b"%00" in scope.get("query_string", b""):
            body = {
                "type": "UsageError",
                "code": "usage_error",
                "message": "the URL contains a NUL character (%00), which no name or id can hold",
                "details": {},
            }
            await send_json(send, 400, body)
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
                message["headers"] = [*message.get("headers", []), _VERSION]
            await send(message)

        try:
            await self.app(scope, guarded_receive, tagged_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await send_json(send, 413, self._too_large_body())

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
