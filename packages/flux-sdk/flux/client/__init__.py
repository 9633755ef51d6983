"""Typed HTTP clients for a Flux server: :class:`FluxClient` (blocking) and
:class:`AsyncFluxClient` (asyncio), over httpx, with Server-Sent Events via httpx-sse.

The CLI, the worker, the MCP server and subworkflow calls all go through these; nothing else
builds Flux URLs. A server with authentication on needs an API key (``api_key=``;
:func:`default_api_key` finds the one configured on this machine). Every request carries the
protocol version header; error answers become
:class:`flux.errors.ApiError` (``NotFoundError`` for 404, ``ConflictError`` for 409) or
:class:`flux.errors.ProtocolError`, with the server's message.

A worker registers, then works through a channel bound to its session token::

    async with AsyncFluxClient("http://localhost:8000") as client:
        session = await client.register_worker(request, bootstrap_token=token)
        channel = client.worker(session.name, session.session_token)
        async for frame in channel.connect():
            ...

Either client takes several servers of one database (``FluxClient("http://a:8000,http://b:8000")``)
and moves to the next when one cannot be reached, for the calls that cannot do their work
twice (see :mod:`flux.client._servers`).
"""

from flux.client._async import AsyncFluxClient
from flux.client._async_worker import AsyncWorkerChannel
from flux.client._calls import Call, StreamCall
from flux.client._credentials import ADMIN_KEY_FILE, default_api_key
from flux.client._http import is_retryable
from flux.client._servers import server_urls
from flux.client._sync import FluxClient
from flux.client._sync_worker import WorkerChannel

__all__ = [
    "ADMIN_KEY_FILE",
    "AsyncFluxClient",
    "AsyncWorkerChannel",
    "Call",
    "FluxClient",
    "StreamCall",
    "WorkerChannel",
    "default_api_key",
    "is_retryable",
    "server_urls",
]
