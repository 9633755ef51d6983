"""The lean transport under the async client, against a raw asyncio server that behaves in
the ways a real one may: answers chunked, drops idle keep-alive connections, refuses with an
error body, never answers, or is not there at all; what goes to httpx's own transport; and the
client's side: requests of a shape as httpx builds them, no cookies kept."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from flux.client import AsyncFluxClient, Call, StreamCall
from flux.client._connection import HEAD_LIMIT, Closed, Connection
from flux.client._http import RequestTemplates, base_headers, request_headers
from flux.client._lean import LeanClient, LeanTransport, transport_for
from flux.errors import ApiError, ProtocolError
from flux.protocol import PROTOCOL_VERSION

ANSWER = {"results": []}
LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=10)


@dataclass
class Served:
    url: str
    requests: list[bytes] = field(default_factory=list)  # head and body of each
    peers: list[object] = field(default_factory=list)  # the client's address, per request


@contextlib.asynccontextmanager
async def serving(behaviour) -> AsyncIterator[Served]:
    """A server that records each request and answers as ``behaviour`` says; on exit it waits
    for its connections to be closed by the client."""
    handlers: set[asyncio.Task[None]] = set()
    served = Served("")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        peer = writer.get_extra_info("peername")
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                served.requests.append(head + await _body(reader, head))
                served.peers.append(peer)
                close = await behaviour(writer, len(served.requests))
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    served.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield served
        await asyncio.wait_for(asyncio.gather(*handlers), 10)


async def _body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    lower = head.lower()
    if b"content-length: " in lower:
        length = int(lower.split(b"content-length: ")[1].split(b"\r\n")[0])
        return await reader.readexactly(length)
    if b"transfer-encoding: chunked" in lower:
        chunks = []
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readexactly(2)
        return b"".join(chunks)
    return b""


def _answer(body: bytes, status: str = "200 OK", extra: str = "", version: str = PROTOCOL_VERSION):
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nx-flux-protocol: {version}\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


async def _ok(writer, n):
    writer.write(_answer(json.dumps(ANSWER).encode()))
    return False


async def test_keep_alive_reuse_and_a_kept_connection_dropped_before_answering() -> None:
    async def behaviour(writer, n):
        if n == 3:
            return True  # the server drops the kept connection with the request unanswered
        writer.write(_answer(json.dumps(ANSWER).encode()))
        return False

    async with serving(behaviour) as served, AsyncFluxClient(served.url) as client:
        channel = client.worker("w1", "token")
        for _ in range(3):
            assert (await channel.claims(["e1"])).results == []
    assert len(served.requests) == 4  # the third call sent again, once
    assert len(set(served.peers)) == 2  # one connection for the first two calls, one for the third
    for request in served.requests:
        assert request.startswith(b"POST /workers/w1/claims HTTP/1.1\r\n")
        assert b"\r\nAuthorization: Bearer token\r\n" in request
        assert f"\r\nX-Flux-Protocol: {PROTOCOL_VERSION}\r\n".encode() in request


async def test_chunked_answers_and_errors_map_like_httpx() -> None:
    async def behaviour(writer, n):
        if n == 1:
            body = json.dumps(ANSWER).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-flux-protocol: 1.1\r\n\r\n"
                + f"{len(body):x}\r\n".encode()
                + body
                + b"\r\n0\r\n\r\n"
            )
        elif n == 2:
            error = {"type": "ApiError", "code": "unauthorized", "message": "bad token",
                     "details": {}}  # fmt: skip
            writer.write(_answer(json.dumps(error).encode(), "401 Unauthorized"))
        else:
            writer.write(_answer(json.dumps(ANSWER).encode(), version="2.0"))
        return False

    async with serving(behaviour) as served, AsyncFluxClient(served.url) as client:
        channel = client.worker("w1", "token")
        assert (await channel.checkpoints([])).results == []
        with pytest.raises(ApiError, match="bad token") as info:
            await channel.checkpoints([])
        assert info.value.status_code == 401
        with pytest.raises(ProtocolError, match=r"2\.0"):
            await channel.checkpoints([])
    assert len(set(served.peers)) == 1


async def test_an_unreachable_server_is_status_0() -> None:
    async with serving(_ok) as served:
        url = served.url
    async with AsyncFluxClient(url, timeout=2) as client:
        with pytest.raises(ApiError, match="cannot reach") as info:
            await client.worker("w1", "token").claims(["e1"])
    assert info.value.status_code == 0


async def test_a_new_connection_dropped_before_answering_is_not_retried() -> None:
    async def drop(writer, n):
        return True

    async with serving(drop) as served, AsyncFluxClient(served.url) as client:
        with pytest.raises(ApiError, match="cannot reach") as info:
            await client.worker("w1", "token").claims(["e1"])
    assert info.value.status_code == 0
    assert len(served.requests) == 1


async def test_a_server_that_never_answers_times_out_as_status_0() -> None:
    async def silent(writer, n):
        return False

    async with serving(silent) as served, AsyncFluxClient(served.url, timeout=0.2) as client:
        with pytest.raises(ApiError, match="cannot reach") as info:
            await client.worker("w1", "token").checkpoints([])
    assert info.value.status_code == 0
    assert len(served.requests) == 1  # sent once: a timeout is not a dropped connection


async def test_a_malformed_answer_is_a_protocol_error_of_httpx() -> None:
    async def garbage(writer, n):
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: many\r\n\r\n")
        return True

    transport = LeanTransport(limits=LIMITS)
    async with serving(garbage) as served, httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.RemoteProtocolError, match="malformed"):
            await client.post(f"{served.url}/x", content=b"{}")


async def test_other_methods_and_streamed_bodies_go_to_httpx_transport() -> None:
    async def chunks():
        yield b'{"a":'
        yield b"1}"

    transport = LeanTransport(limits=LIMITS)
    events = {"Accept": "text/event-stream"}
    async with serving(_ok) as served, httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(f"{served.url}/health")).json() == ANSWER
        assert (await client.post(f"{served.url}/stream", content=chunks())).json() == ANSWER
        assert (await client.post(f"{served.url}/sse", content=b"{}", headers=events)).is_success
        assert (await client.post(f"{served.url}/lean?x=1", content=b'{"b":2}')).json() == ANSWER
    first, streamed, sse, lean = served.requests
    assert first.startswith(b"GET /health HTTP/1.1\r\n")
    # httpx's transport sends a body of unknown size chunked; the lean path never does
    assert b"\r\ntransfer-encoding: chunked\r\n" in streamed.lower()
    assert streamed.endswith(b'{"a":1}')
    assert sse.startswith(b"POST /sse HTTP/1.1\r\n")
    assert lean.startswith(b"POST /lean?x=1 HTTP/1.1\r\n")
    assert lean.endswith(b'{"b":2}')
    httpx_pool, *others, lean_connection = served.peers
    assert others == [httpx_pool, httpx_pool]
    assert lean_connection != httpx_pool


def test_the_lean_transport_only_for_plain_http_without_a_proxy(monkeypatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(transport_for("http://10.0.0.5:8000", LIMITS), LeanTransport)
    assert transport_for("https://flux.example.com", LIMITS) is None

    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example.com:3128")
    assert transport_for("http://10.0.0.5:8000", LIMITS) is None
    monkeypatch.setenv("NO_PROXY", "localhost, 10.0.0.5")
    assert isinstance(transport_for("http://10.0.0.5:8000", LIMITS), LeanTransport)
    monkeypatch.setenv("NO_PROXY", ".example.com")  # httpx's wider matching: not taken
    assert transport_for("http://flux.example.com", LIMITS) is None


async def test_a_client_behind_a_proxy_from_the_environment_goes_through_it(monkeypatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with serving(_ok) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with AsyncFluxClient("http://flux.invalid:8000") as client:
            assert (await client.worker("w1", "token").claims(["e1"])).results == []
    # a request through a proxy names the whole URL
    target = b"POST http://flux.invalid:8000/workers/w1/claims HTTP/1.1\r\n"
    assert proxy.requests[0].startswith(target)


async def test_a_posted_event_stream_is_read_as_it_comes() -> None:
    first_read = asyncio.Event()

    async def stream(writer, n):
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n" + _chunk(b"event: one\r\ndata: 1\r\n\r\n")
        )
        await writer.drain()
        await first_read.wait()  # a client that waits for the whole answer never gets here
        writer.write(_chunk(b"event: two\r\ndata: 2\r\n\r\n") + b"0\r\n\r\n")
        return True

    call = StreamCall("POST", "/run/stream", content=b"{}", content_type="application/json")
    async with serving(stream) as served, AsyncFluxClient(served.url) as client:
        frames = []
        async for frame in client.events(call, lambda event, data: (event, data)):
            frames.append(frame)
            first_read.set()
    assert frames == [("one", "1"), ("two", "2")]


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _same_as_build_request(client: httpx.AsyncClient, call: Call[bytes], built: httpx.Request):
    wait = httpx.Timeout(5, read=None)
    expected = client.build_request(
        call.method,
        call.path,
        params=call.params,
        content=call.content,
        files=call.files,
        headers=request_headers(call.token, call.content_type),
        timeout=wait if call.wait else httpx.USE_CLIENT_DEFAULT,
    )
    assert built.method == expected.method
    assert built.url == expected.url
    assert built.headers.raw == expected.headers.raw
    assert built.content == expected.content
    assert built.extensions == expected.extensions


async def test_requests_of_one_shape_are_what_build_request_makes() -> None:
    def call(method, path, content=None, **fields):
        return Call(method, path, bytes, content=content, **fields)

    json = {"content_type": "application/json", "token": "token"}
    shapes = [
        [call("POST", "/workers/w1/checkpoints", b'{"a":1}', **json),
         call("POST", "/workers/w1/checkpoints", b'{"a":12345}', **json)],
        [call("POST", "/workers/w1/claims", **json),
         call("POST", "/workers/w1/claims", b"", **json)],
        [call("GET", "/executions/e1"), call("GET", "/executions/e1")],
        [call("POST", "/workflows/x/run/sync", b"1", wait=True),
         call("POST", "/workflows/x/run/sync", b"22", wait=True)],
        [call("GET", "/executions", params={"limit": "5"}),
         call("GET", "/executions", params={"limit": "6"})],
    ]  # fmt: skip
    async with LeanClient(
        base_url="http://flux.test:8000/under/", headers=base_headers({"X-Extra": "1"}), timeout=5
    ) as client:
        templates = RequestTemplates(client, httpx.Timeout(5, read=None))
        for shape in shapes:
            for each in shape:
                _same_as_build_request(client, each, templates.build(each))


async def test_the_client_keeps_no_cookies() -> None:
    async def set_cookie(writer, n):
        writer.write(_answer(json.dumps(ANSWER).encode(), extra="set-cookie: session=abc\r\n"))
        return False

    async with serving(set_cookie) as served, AsyncFluxClient(served.url) as client:
        channel = client.worker("w1", "token")
        for _ in range(2):
            assert (await channel.claims(["e1"])).results == []
        assert await client.send(Call("GET", "/health", bytes)) == json.dumps(ANSWER).encode()
        http = client._http
        assert not http.cookies
        with pytest.raises(AttributeError):
            http.cookies = {"session": "abc"}
    assert len(served.requests) == 3
    assert not any(b"\r\ncookie:" in request.lower() for request in served.requests)


class _Scripted(asyncio.Transport):
    """A transport that answers each write with ``pieces`` (then the end, with ``end``), each
    delivered to the connection in its own turn of the event loop."""

    def __init__(self, conn: Connection, pieces: list[bytes], end: bool = False) -> None:
        super().__init__()
        self.conn, self.pieces, self.end = conn, pieces, end
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data) -> None:
        self.written.append(bytes(data))
        loop = asyncio.get_running_loop()
        for piece in self.pieces:
            loop.call_soon(self.conn.data_received, piece)
        if self.end:
            loop.call_soon(self.conn.eof_received)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.conn.connection_lost, None)


def _pieces(answer: bytes, size: int) -> list[bytes]:
    return [answer[i : i + size] for i in range(0, len(answer), size)]


async def _exchange(answer: bytes, size: int, end: bool = False):
    conn = Connection()
    transport = _Scripted(conn, _pieces(answer, size), end)
    conn.connection_made(transport)
    try:
        return await conn.exchange(b"POST / HTTP/1.1\r\n\r\n", 5)
    finally:
        assert transport.written == [b"POST / HTTP/1.1\r\n\r\n"]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
async def test_a_connection_reads_an_answer_arriving_in_pieces(size) -> None:
    chunked = (
        b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nx-a:  1 \r\n\r\n"
        b"5\r\nhello\r\n7;name=value\r\n worl\r\n\r\n1\r\nd\r\n0\r\ntrailer: t\r\n\r\n"
    )
    status, headers, body, keep = await _exchange(chunked, size)
    assert (status, body, keep) == (200, b"hello worl\r\nd", True)
    assert headers == [(b"Transfer-Encoding", b"chunked"), (b"x-a", b"1")]

    sized = b'HTTP/1.1 409 Conflict\r\ncontent-length: 9\r\nconnection: close\r\n\r\n{"a":\r\n1}'
    assert (await _exchange(sized, size))[::2] == (409, b'{"a":\r\n1}')
    assert (await _exchange(sized, size))[3] is False

    no_body = b"HTTP/1.1 204 No Content\r\n\r\n"
    assert (await _exchange(no_body, size))[2:] == (b"", True)

    old = b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"
    assert (await _exchange(old, size))[2:] == (b"ok", False)
    kept = b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok"
    assert (await _exchange(kept, size))[2:] == (b"ok", True)

    unframed = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nto the end"
    assert (await _exchange(unframed, size, end=True))[2:] == (b"to the end", False)


async def test_a_connection_that_ends_or_answers_garbage_fails_the_exchange() -> None:
    with pytest.raises(Closed):
        await _exchange(b"", 1, end=True)
    with pytest.raises(EOFError):
        await _exchange(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nabc", 2, end=True)
    with pytest.raises(EOFError):
        await _exchange(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab", 4, end=True
        )
    with pytest.raises(ValueError):
        await _exchange(b"HTTP/1.1 OK\r\n\r\n", 3)
    with pytest.raises(ValueError):
        await _exchange(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", 3)
    with pytest.raises(ValueError, match="chunk"):
        await _exchange(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nab\r\n", 3)
    with pytest.raises(ValueError, match="too long"):
        await _exchange(b"HTTP/1.1 200 OK\r\n" + b"x" * (HEAD_LIMIT + 1), 4096)
    with pytest.raises(TimeoutError):
        conn = Connection()
        conn.connection_made(_Scripted(conn, [b"HTTP/1.1 200 OK\r\n"]))
        await conn.exchange(b"request", 0.05)


async def test_an_unframed_answer_ends_with_its_connection_which_is_not_reused() -> None:
    async def unframed(writer, n):
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"x-flux-protocol: {PROTOCOL_VERSION}\r\n\r\n".encode()
            + json.dumps(ANSWER).encode()
        )
        return True

    async with serving(unframed) as served, AsyncFluxClient(served.url) as client:
        channel = client.worker("w1", "token")
        for _ in range(2):
            assert (await channel.claims(["e1"])).results == []
    assert len(served.requests) == 2
    assert len(set(served.peers)) == 2


def _gzip_answer(body: bytes) -> bytes:
    import gzip

    packed = gzip.compress(body)
    return (
        f"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: {len(packed)}\r\n\r\n"
    ).encode() + packed


_ANSWERS = {
    "json": _answer(json.dumps(ANSWER).encode()),
    "error": _answer(b'{"type":"X","code":"not_found","message":"no"}', "404 Not Found"),
    "chunked": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    + _chunk(b'{"a":')
    + _chunk(b"1}")
    + b"0\r\n\r\n",
    "empty": b"HTTP/1.1 204 No Content\r\n\r\n",
    "gzip": _gzip_answer(b'{"zipped":true}'),
}


@pytest.mark.parametrize("kind", sorted(_ANSWERS))
async def test_the_lean_send_returns_what_httpx_send_returns(kind, caplog) -> None:
    async def answer(writer, n):
        writer.write(_ANSWERS[kind])
        return False

    caplog.set_level("INFO", logger="httpx")
    seen = []
    async with serving(answer) as served:
        for client in (
            LeanClient(base_url=served.url, transport=LeanTransport(limits=LIMITS), timeout=5),
            httpx.AsyncClient(
                base_url=served.url, transport=LeanTransport(limits=LIMITS), timeout=5
            ),
        ):
            async with client:
                request = client.build_request("POST", "/workers/w1/checkpoints", content=b"{}")
                caplog.clear()
                response = await client.send(request)
                seen.append(
                    (
                        response.status_code,
                        response.reason_phrase,
                        response.http_version,
                        response.headers.raw,
                        response.content,
                        response.text,
                        response.is_closed,
                        response.is_stream_consumed,
                        response.request is request,
                        [record.getMessage() for record in caplog.records],
                    )
                )
    lean, httpx_own = seen
    assert lean == httpx_own
    assert lean[-1] == [f'HTTP Request: POST {served.url}/workers/w1/checkpoints "HTTP/1.1 '
                        f'{lean[0]} {lean[1]}"']  # fmt: skip


async def test_what_httpx_send_adds_is_kept_where_it_applies() -> None:
    """Event hooks, auth, redirects followed and streamed answers take httpx's own send."""
    hooked = []

    async def hook(response: httpx.Response) -> None:
        hooked.append(response.status_code)

    async with serving(_ok) as served:
        async with LeanClient(
            base_url=served.url,
            transport=LeanTransport(limits=LIMITS),
            timeout=5,
            event_hooks={"response": [hook]},
        ) as client:
            await client.post("/x", content=b"{}")
        assert hooked == [200]
        async with LeanClient(
            base_url=served.url, transport=LeanTransport(limits=LIMITS), timeout=5
        ) as client:
            response = await client.post("/x", content=b"{}", auth=("user", "secret"))
            async with client.stream("POST", "/x", content=b"{}") as streamed:
                assert await streamed.aread() == json.dumps(ANSWER).encode()
    assert response.status_code == 200
    assert b"authorization: basic" in served.requests[1].lower()
