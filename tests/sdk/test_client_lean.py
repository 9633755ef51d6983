"""The lean HTTP/1.1 path of a worker's claims and checkpoints, against a raw asyncio server
that behaves in the ways a real one may: answers chunked, drops idle keep-alive connections,
refuses with an error body, or is not there at all."""

from __future__ import annotations

import asyncio
import json

import pytest
from flux.client import AsyncFluxClient
from flux.errors import ApiError, ProtocolError
from flux.protocol import PROTOCOL_VERSION

ANSWER = {"results": []}


async def _serve(behaviour):
    served: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                served.append(head + await reader.readexactly(length))
                close = await behaviour(writer, len(served))
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", served


def _answer(body: bytes, status: str = "200 OK", extra: str = "", version: str = PROTOCOL_VERSION):
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nx-flux-protocol: {version}\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


async def test_keep_alive_reuse_and_a_dropped_idle_connection() -> None:
    async def behaviour(writer, n):
        writer.write(_answer(json.dumps(ANSWER).encode()))
        return n == 2  # after the second answer the server drops the connection silently

    server, url, served = await _serve(behaviour)
    async with server, AsyncFluxClient(url) as client:
        channel = client.worker("w1", "token")
        for _ in range(4):
            assert (await channel.claims(["e1"])).results == []
    assert len(served) == 4
    assert all(b"Authorization: Bearer token" in r for r in served)
    assert all(b"POST /workers/w1/claims HTTP/1.1" in r for r in served)


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

    server, url, _ = await _serve(behaviour)
    async with server, AsyncFluxClient(url) as client:
        channel = client.worker("w1", "token")
        assert (await channel.checkpoints([])).results == []
        with pytest.raises(ApiError, match="bad token") as info:
            await channel.checkpoints([])
        assert info.value.status_code == 401
        with pytest.raises(ProtocolError, match=r"2\.0"):
            await channel.checkpoints([])


async def test_an_unreachable_server_is_status_0() -> None:
    server, url, _ = await _serve(lambda writer, n: None)
    server.close()
    await server.wait_closed()
    async with AsyncFluxClient(url, timeout=2) as client:
        with pytest.raises(ApiError, match="cannot reach") as info:
            await client.worker("w1", "token").claims(["e1"])
    assert info.value.status_code == 0
