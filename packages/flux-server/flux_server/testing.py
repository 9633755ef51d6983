"""Run a Flux server inside a test's event loop, with streaming (SSE) support.

httpx's own ``ASGITransport`` collects a whole response before returning it, so it cannot
carry the endless Server-Sent Event streams of workers and ``run/stream``.
:class:`StreamingASGITransport` streams bodies as the app sends them and tells the app the
client went away when the response is closed::

    app = create_app(options)
    async with serve_in_process(app) as transport:
        async with AsyncFluxClient("http://flux.test", transport=transport) as client:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

__all__ = ["StreamingASGITransport", "serve_in_process"]


class _Body(httpx.AsyncByteStream):
    def __init__(
        self,
        chunks: asyncio.Queue[bytes | BaseException | None],
        disconnected: asyncio.Event,
        task: asyncio.Task[None],
    ) -> None:
        self._chunks = chunks
        self._disconnected = disconnected
        self._task = task

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._chunks.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def aclose(self) -> None:
        self._disconnected.set()
        try:
            async with asyncio.timeout(5):
                await asyncio.shield(self._task)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """An httpx transport that calls an ASGI app in-process and streams its responses.

    An exception escaping the app (a server bug) is raised in the test.
    """

    def __init__(self, app: Any, client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port or 80),
            "client": self.client,
            "root_path": "",
        }
        assert isinstance(request.stream, httpx.AsyncByteStream)
        body = request.stream.__aiter__()
        body_done = False
        disconnected = asyncio.Event()
        loop = asyncio.get_running_loop()
        started: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = loop.create_future()
        chunks: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()

        async def receive() -> dict[str, Any]:
            nonlocal body_done
            if not body_done:
                try:
                    chunk = await body.__anext__()
                except StopAsyncIteration:
                    body_done = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                return {"type": "http.request", "body": chunk, "more_body": True}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.set_result((message["status"], list(message.get("headers", []))))
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    chunks.put_nowait(message["body"])
                if not message.get("more_body", False):
                    chunks.put_nowait(None)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                else:
                    chunks.put_nowait(exc)
                if not isinstance(exc, Exception):
                    raise
            finally:
                if not started.done():
                    started.set_exception(RuntimeError("the app returned without a response"))
                chunks.put_nowait(None)

        task = asyncio.create_task(run())
        try:
            status, headers = await started
        except BaseException:
            task.cancel()
            raise
        return httpx.Response(
            status, headers=headers, stream=_Body(chunks, disconnected, task), request=request
        )


@asynccontextmanager
async def serve_in_process(app: FastAPI) -> AsyncIterator[StreamingASGITransport]:
    """Run ``app``'s lifespan (start-up and shutdown) around a transport to it."""
    async with app.router.lifespan_context(app):
        yield StreamingASGITransport(app)
