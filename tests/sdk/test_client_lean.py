"""The lean transport under the async client, against a raw asyncio server that behaves in
the ways a real one may: answers chunked, drops idle keep-alive connections, refuses with an
error body, never answers, or is not there at all; and what goes to httpx's own transport."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from flux.client import AsyncFluxClient, StreamCall
from flux.client._lean import LeanTransport, transport_for
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
