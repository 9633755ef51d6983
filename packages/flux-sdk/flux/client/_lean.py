"""An httpx transport whose plain-HTTP POSTs go over a few reused asyncio connections.

httpx's default transport (httpcore) spends CPU on every request in proportion to its pooled
connections, and more per request than a worker's small JSON POSTs (claims, checkpoints) are
worth: with it, a busy worker spent over twice the CPU per task (see docs/decisions.md).
:class:`LeanTransport` sends those POSTs over plain asyncio connections and hands every other
request to httpx's own :class:`httpx.AsyncHTTPTransport`. :func:`transport_for` installs it
only where no proxy from the environment may apply, since a client given a transport ignores
those.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request

import httpx

__all__ = ["LeanTransport", "transport_for"]

IDLE_SECONDS = 30.0
"""How long a connection may sit unused before it is dropped (the server keeps them 65 s)."""

_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Closed(Exception):
    """The server closed a reused connection before answering (its keep-alive ran out)."""


class LeanTransport(httpx.AsyncBaseTransport):
    """An :class:`httpx.AsyncBaseTransport`: plain-HTTP POSTs whose body is in memory go over
    reused HTTP/1.1 connections of this transport; anything else (another method, TLS, a
    streamed body, a request for an event stream) goes to an :class:`httpx.AsyncHTTPTransport`
    with the same ``limits``.

    Errors are httpx's: :class:`httpx.ConnectError`, :class:`httpx.ConnectTimeout`,
    :class:`httpx.ReadTimeout`, :class:`httpx.ReadError`, :class:`httpx.RemoteProtocolError`.
    """

    def __init__(self, *, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._fallback = httpx.AsyncHTTPTransport(limits=limits)
        self._max_idle = limits.max_keepalive_connections
        self._idle: dict[tuple[str, int], list[tuple[_Connection, float]]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if (
            url.scheme != "http"
            or request.method != "POST"
            or not isinstance(request.stream, httpx.ByteStream)
            # the lean path reads a whole answer before returning it: no event streams
            or "text/event-stream" in request.headers.get("accept", "")
        ):
            return await self._fallback.handle_async_request(request)
        head = [f"POST {url.raw_path.decode('ascii')} HTTP/1.1\r\n".encode("ascii")]
        head += [b"%s: %s\r\n" % pair for pair in request.headers.raw]
        message = b"".join(head) + b"\r\n" + request.content
        timeouts = request.extensions.get("timeout", {})
        origin = (url.host, url.port or 80)
        status, headers, body, keep, conn = await self._exchange(
            origin, message, request, timeouts.get("connect"), timeouts.get("read")
        )
        idle = self._idle.setdefault(origin, [])
        if keep and (self._max_idle is None or len(idle) < self._max_idle):
            idle.append((conn, time.monotonic()))
        else:
            _close(conn[1])
        return httpx.Response(
            status,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions={"http_version": b"HTTP/1.1"},
            request=request,
        )

    async def _exchange(
        self,
        origin: tuple[str, int],
        message: bytes,
        request: httpx.Request,
        connect: float | None,
        read: float | None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool, _Connection]:
        conn = self._reuse(origin)
        reused = conn is not None
        try:
            if conn is None:
                conn = await _connect(origin, connect, request)
            try:
                answer = await _answer(conn, message, read)
            except (_Closed, ConnectionError):
                # A kept connection the server had already dropped (its keep-alive ran out
                # while the request was on its way): the request never reached the route,
                # so it goes once more on a new connection, as browsers do.
                _close(conn[1])
                if not reused:
                    raise
                conn = await _connect(origin, connect, request)
                answer = await _answer(conn, message, read)
        except BaseException as exc:
            if conn is not None:
                _close(conn[1])
            error = _as_httpx(exc, request)
            if error is None or error is exc:
                raise
            raise error from exc
        return (*answer, conn)

    def _reuse(self, origin: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn, since = idle.pop()
            if now - since < IDLE_SECONDS and not conn[1].is_closing() and not conn[0].at_eof():
                return conn
            _close(conn[1])
        return None

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        writers = [conn[1] for conns in idle.values() for conn, _ in conns]
        for writer in writers:
            _close(writer)
        for writer in writers:
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        await self._fallback.aclose()


def transport_for(base_url: str, limits: httpx.Limits) -> LeanTransport | None:
    """The transport for a client of ``base_url``: a :class:`LeanTransport` for a plain-HTTP
    server that no proxy from the environment may apply to, else None (httpx's own, which
    honours those proxies)."""
    url = httpx.URL(base_url)
    if url.scheme != "http":
        return None
    proxies = urllib.request.getproxies()
    if proxies.get("http") or proxies.get("all"):
        # Only an exact NO_PROXY entry (or "*") is taken as bypassing them: httpx's own
        # matching is wider, and a proxy wrongly skipped would be worse than a slower client.
        bypassed = {host.strip().lower() for host in proxies.get("no", "").split(",")}
        if "*" not in bypassed and url.host.lower() not in bypassed:
            return None
    return LeanTransport(limits=limits)


async def _connect(
    origin: tuple[str, int], timeout: float | None, request: httpx.Request
) -> _Connection:
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.open_connection(*origin)
    except TimeoutError as exc:
        raise httpx.ConnectTimeout("timed out connecting", request=request) from exc
    except OSError as exc:
        raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc


async def _answer(
    conn: _Connection, message: bytes, timeout: float | None
) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
    """Send one request; (status, raw headers, body, whether the connection may be reused).
    Content-Length, chunked and close-delimited bodies."""
    reader, writer = conn
    writer.write(message)
    async with asyncio.timeout(timeout):
        await writer.drain()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _Closed from None
            raise
        status_line, *lines = head[:-4].split(b"\r\n")
        version, status = status_line.split(b" ", 2)[:2]
        headers = [(name.strip(), value.strip()) for name, _, value in
                   (line.partition(b":") for line in lines)]  # fmt: skip
        fields = {name.lower(): value.lower() for name, value in headers}
        if b"chunked" in fields.get(b"transfer-encoding", b""):
            chunks: list[bytes] = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                pass
            body = b"".join(chunks)
        elif b"content-length" in fields:
            body = await reader.readexactly(int(fields[b"content-length"]))
        else:
            body = await reader.read()  # no framing: the body runs to the end of the connection
    connection = fields.get(b"connection", b"")
    framed = b"content-length" in fields or b"transfer-encoding" in fields
    persistent = connection == b"keep-alive" if version == b"HTTP/1.0" else connection != b"close"
    return int(status), headers, body, framed and persistent


def _as_httpx(exc: BaseException, request: httpx.Request) -> httpx.TransportError | None:
    """The httpx error a failed exchange stands for (None: not an exchange's failure)."""
    if isinstance(exc, httpx.TransportError):
        return exc
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout("timed out waiting for the answer", request=request)
    if isinstance(exc, _Closed | ConnectionError):
        return httpx.ReadError(str(exc) or "the server closed the connection", request=request)
    if isinstance(exc, ValueError | EOFError | asyncio.LimitOverrunError):
        return httpx.RemoteProtocolError(f"malformed answer: {exc!r}", request=request)
    return None


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()
