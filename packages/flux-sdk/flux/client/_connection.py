"""One HTTP/1.1 client connection over asyncio, for :class:`flux.client._lean.LeanTransport`.

It sends a request whose bytes are whole and reads the whole answer (framed by Content-Length,
chunked, or by the end of the connection). An :class:`asyncio.Protocol` rather than asyncio's
streams: the answer is parsed where its bytes arrive, and the request waits on one future
instead of one read per part of the answer.
"""

from __future__ import annotations

import asyncio

__all__ = ["HEAD_LIMIT", "Answer", "Closed", "Connection", "open_connection"]

HEAD_LIMIT = 64 * 1024
"""The longest answer head (status line and headers) or chunk-size line read."""

Answer = tuple[int, list[tuple[bytes, bytes]], bytes, bool]
"""Status, raw headers, body, whether the connection may be reused."""

_Head = tuple[int, list[tuple[bytes, bytes]], int | None, bool]
_NO_BODY = frozenset({204, 304})
_CHUNKED = -1


class Closed(Exception):
    """The server closed the connection before answering (a kept connection whose keep-alive
    ran out)."""


async def open_connection(origin: tuple[str, int], timeout: float | None) -> Connection:
    """Connect to ``(host, port)``.

    Raises:
        TimeoutError: not connected within ``timeout`` seconds.
        OSError: the connection failed.
    """
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        _, conn = await loop.create_connection(Connection, *origin)
    return conn


class Connection(asyncio.Protocol):
    """One HTTP/1.1 client connection: one request at a time (:meth:`exchange`), its answer
    read whole as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once the connection is closed."""
        self._buffer = bytearray()
        self._answer: asyncio.Future[Answer] | None = None
        self._head: _Head | None = None
        self._chunks: list[bytes] = []  # a chunked body's chunks so far
        self._trailers = False  # a chunked body's last chunk is in
        self._ended = False  # the server closed its side
        self._lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._answer is not None:
            self._advance()

    def eof_received(self) -> bool:
        self._ended = True
        self._advance()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended, self._lost = True, exc
        self._advance()
        if not self.closed.done():
            self.closed.set_result(None)

    def usable(self) -> bool:
        """Open, and nothing came from the server since the last answer."""
        transport = self.transport
        return (
            transport is not None
            and not transport.is_closing()
            and not self._ended
            and not self._buffer
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, message: bytes, timeout: float | None) -> Answer:
        """Send one request (its whole bytes) and wait for its whole answer.

        Raises:
            Closed: the server closed the connection without a byte of an answer (so the
                request never reached a route).
            TimeoutError: no whole answer within ``timeout`` seconds.
            EOFError: the server closed the connection in the middle of the answer.
            ValueError: the answer is not HTTP/1.1 as this reads it.
        """
        assert self.transport is not None and self._answer is None
        loop = asyncio.get_running_loop()
        answer = self._answer = loop.create_future()
        self._head, self._chunks, self._trailers = None, [], False
        self.transport.write(message)
        if self._ended:  # closed while it sat idle: nothing else will wake the answer
            self._advance()
        timer = None if timeout is None else loop.call_later(timeout, self._time_out)
        try:
            return await answer
        finally:
            self._answer = None
            if timer is not None:
                timer.cancel()

    def _time_out(self) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(TimeoutError())

    def _advance(self) -> None:
        answer = self._answer
        if answer is None or answer.done():
            return
        try:
            result = self._parse()
        except (ValueError, IndexError) as exc:
            answer.set_exception(ValueError(str(exc) or type(exc).__name__))
            return
        if result is not None:
            answer.set_result(result)
        elif self._ended:
            if self._head is None and not self._buffer:
                error: Exception = Closed(str(self._lost or "closed before answering"))
            else:
                error = EOFError("the server closed the connection in the middle of the answer")
            answer.set_exception(error)

    def _parse(self) -> Answer | None:
        buffer = self._buffer
        while self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > HEAD_LIMIT:
                    raise ValueError("answer head too long")
                return None
            head = _read_head(bytes(buffer[:end]))
            del buffer[: end + 4]
            if not 100 <= head[0] < 200:  # an interim answer (103 Early Hints) is skipped
                self._head = head
        status, headers, length, persistent = self._head
        if length == _CHUNKED:
            body = self._dechunk()
            if body is None:
                return None
        elif length is None:  # no framing: the body runs to the end of the connection
            if not self._ended:
                return None
            body, persistent = bytes(buffer), False
            buffer.clear()
        else:
            if len(buffer) < length:
                return None
            body = bytes(buffer[:length])
            del buffer[:length]
        return status, headers, body, persistent

    def _dechunk(self) -> bytes | None:
        """The whole chunked body once it is in, else None (the chunks so far are kept)."""
        buffer = self._buffer
        while (end := buffer.find(b"\r\n")) >= 0:
            line = bytes(buffer[:end])
            if self._trailers:  # after the last chunk, up to an empty line
                del buffer[: end + 2]
                if not line:
                    return b"".join(self._chunks)
                continue
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                del buffer[: end + 2]
                self._trailers = True
                continue
            start, stop = end + 2, end + 2 + size
            if len(buffer) < stop + 2:
                return None
            if buffer[stop : stop + 2] != b"\r\n":
                raise ValueError("a chunk longer than its size")
            self._chunks.append(bytes(buffer[start:stop]))
            del buffer[: stop + 2]
        if len(buffer) > HEAD_LIMIT:
            raise ValueError("chunk size line too long")
        return None


def _read_head(head: bytes) -> _Head:
    """Status, raw headers, body length (``_CHUNKED``, or None: up to the end of the
    connection), whether the connection stays open."""
    status_line, *lines = head.split(b"\r\n")
    version, status_text = status_line.split(b" ", 2)[:2]
    status = int(status_text)
    headers = [(name.strip(), value.strip()) for name, _, value in
               (line.partition(b":") for line in lines)]  # fmt: skip
    fields = {name.lower(): value.lower() for name, value in headers}
    length: int | None
    if status in _NO_BODY:
        length = 0
    elif b"chunked" in fields.get(b"transfer-encoding", b""):
        length = _CHUNKED
    elif b"content-length" in fields:
        length = int(fields[b"content-length"])
        if length < 0:
            raise ValueError(f"Content-Length {length}")
    else:
        length = None
    connection = fields.get(b"connection", b"")
    persistent = connection == b"keep-alive" if version == b"HTTP/1.0" else connection != b"close"
    return status, headers, length, persistent and length is not None
