"""A lean HTTP/1.1 keep-alive path for a worker's hottest calls (claims and checkpoints).

httpx's connection pool spends CPU on every request in proportion to its pooled connections
(it checks each one for expiry), which made HTTP bookkeeping the larger part of a busy
worker's CPU. These calls are small JSON POSTs to one plain-HTTP server, so they go over a
few reused asyncio connections instead. Anything else — TLS, a custom transport, streaming —
stays on httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx

from flux.errors import ApiError

__all__ = ["Closed", "LeanPool", "exchange"]

_IDLE = 30.0
"""Seconds a connection may sit unused before it is dropped (the server keeps them 65 s)."""


class Closed(Exception):
    """The server closed a reused connection before answering (its keep-alive ran out)."""


class LeanPool:
    def __init__(self, base_url: str, headers: dict[str, str], timeout: float) -> None:
        url = httpx.URL(base_url)
        self.host = url.host or "127.0.0.1"
        self.port = url.port or 80
        self.netloc = url.netloc.decode()
        self.base_url = base_url
        self.timeout = timeout
        self.prefix = url.raw_path.decode().rstrip("/")
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    @staticmethod
    def usable(base_url: str, transport: Any) -> bool:
        return transport is None and httpx.URL(base_url).scheme == "http"

    async def post(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """POST ``body``; (status, lower-cased headers, body).

        Raises:
            ApiError: status 0 when the server cannot be reached or the exchange fails.
        """
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (
            f"POST {self.prefix}{path} HTTP/1.1\r\nHost: {self.netloc}\r\n{self.fixed}{extra}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        try:
            async with asyncio.timeout(self.timeout):
                conn, reused = await self._acquire()
                try:
                    answer = await exchange(conn[0], conn[1], request)
                except (Closed, ConnectionError):
                    # A reused connection the server had already dropped: once more on a new
                    # one (claims and checkpoints are safe to repeat).
                    _close(conn[1])
                    if not reused:
                        raise
                    conn = await asyncio.open_connection(self.host, self.port)
                    answer = await exchange(conn[0], conn[1], request)
                except BaseException:
                    _close(conn[1])
                    raise
        except (OSError, EOFError, Closed, TimeoutError, ValueError) as exc:
            raise ApiError(
                f"cannot reach the Flux server at {self.base_url}: "
                f"{exc or type(exc).__name__}; check that it runs and the URL is right",
                0,
                unreachable=True,
            ) from None
        status, answer_headers, data, keep = answer
        if keep:
            self._idle.append((conn[0], conn[1], time.monotonic()))
        else:
            _close(conn[1])
        return status, answer_headers, data

    async def _acquire(self) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], bool]:
        now = time.monotonic()
        while self._idle:
            reader, writer, since = self._idle.pop()
            if now - since < _IDLE and not writer.is_closing() and not reader.at_eof():
                return (reader, writer), True
            _close(writer)
        return await asyncio.open_connection(self.host, self.port), False

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer, _ in idle:
            _close(writer)
        for _, writer, _ in idle:
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, dict[str, str], bytes, bool]:
    """Send one HTTP/1.1 request; (status, lower-cased headers, body, whether the connection
    may be reused). Content-Length, chunked and close-delimited bodies.

    Raises:
        Closed: the connection was closed before any byte of the answer.
    """
    writer.write(request)
    await writer.drain()
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise Closed from None
        raise
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, status = status_line.split(" ", 2)[:2]
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks: list[bytes] = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
            pass
        body = b"".join(chunks)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()  # no framing: the body runs to the end of the connection
    connection = headers.get("connection", "").lower()
    framed = "content-length" in headers or "transfer-encoding" in headers
    persistent = connection == "keep-alive" if version == "HTTP/1.0" else connection != "close"
    return int(status), headers, body, framed and persistent


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()
