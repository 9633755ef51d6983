"""The asyncio client's connection: one or several servers, sending a call, opening a stream
(:class:`AsyncClientBase`; the calls themselves are in ``_async`` and ``_async_admin``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Self, TypeVar

import httpx
from httpx_sse import aconnect_sse

from flux.client import _calls as calls
from flux.client._calls import Call, StreamCall
from flux.client._http import (
    RequestTemplates,
    base_headers,
    check_response,
    keepalive_limits,
    request_headers,
    unreachable,
)
from flux.client._lean import LeanClient, transport_for
from flux.client._servers import (
    FAILOVER_STATUSES,
    Servers,
    new_request_id,
    not_sent,
    server_urls,
)
from flux.protocol import (
    HealthResponse,
)

__all__ = ["AsyncClientBase"]

T = TypeVar("T")
F = TypeVar("F")


class AsyncClientBase:
    """Sends :class:`Call` objects to a Flux server or to several replicas of one (see
    :class:`flux.client.AsyncFluxClient` for the arguments)."""

    def __init__(
        self,
        base_url: str | Sequence[str] = "http://localhost:8000",
        *,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
    ) -> None:
        self._timeout = timeout
        self._headers = base_headers(headers, api_key)
        self._transport = transport
        self._limits = keepalive_limits(max_connections)
        self._servers = Servers(server_urls(base_url))
        self._endpoints: dict[int, tuple[LeanClient, RequestTemplates]] = {}
        self._http, self._requests = self._endpoint(0)

    def _endpoint(self, index: int) -> tuple[LeanClient, RequestTemplates]:
        """The httpx client of server ``index`` and its request templates (made once)."""
        found = self._endpoints.get(index)
        if found is None:
            url = self._servers.urls[index]
            http = LeanClient(
                base_url=url,
                timeout=self._timeout,
                headers=self._headers,
                transport=self._transport or transport_for(url, self._limits),
                limits=self._limits,
            )
            found = self._endpoints[index] = (
                http,
                RequestTemplates(http, httpx.Timeout(self._timeout, read=None)),
            )
        return found

    @property
    def base_url(self) -> str:
        """The server calls go to first now."""
        return str(self._endpoint(self._servers.current)[0].base_url)

    @property
    def server_urls(self) -> list[str]:
        """Every server of this client, in the order given."""
        return list(self._servers.urls)

    async def aclose(self) -> None:
        for http, _ in self._endpoints.values():
            await http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _chosen(self, request_id: str | None) -> str | None:
        """The id of a run or resume: the caller's, else one chosen now when the call may go to
        another server (repeating it there then finds this attempt's work)."""
        if request_id is None and len(self._servers) > 1:
            return new_request_id()
        return request_id

    # -- sending -------------------------------------------------------------------------------

    async def send(self, call: Call[T]) -> T:
        """Send any :class:`Call` (the extension point for endpoints added later)."""
        if len(self._servers) == 1:
            try:
                response = await self._http.send(self._requests.build(call))
            except httpx.TransportError as exc:
                raise unreachable(exc, self._http.base_url) from exc
            check_response(response)
            return call.parse(response.content)
        return await self._send_failover(call)

    async def _send_failover(self, call: Call[T]) -> T:
        servers = self._servers
        order = servers.order()
        for attempt, index in enumerate(order):
            http, requests = self._endpoint(index)
            last = attempt == len(order) - 1
            try:
                response = await http.send(requests.build(call))
            except httpx.TransportError as exc:
                if last or not (not_sent(exc) or call.repeatable):
                    raise servers.unreachable(exc, order[: attempt + 1]) from exc
                servers.moving_on(index, f"failed: {exc or type(exc).__name__}")
                continue
            if not last and response.status_code in FAILOVER_STATUSES and call.repeatable:
                servers.moving_on(index, f"answered {response.status_code}")
                continue
            servers.answered(index)
            check_response(response)
            return call.parse(response.content)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def events(
        self, call: StreamCall, parse: Callable[[str, str], F | None]
    ) -> AsyncIterator[F]:
        """Send a streaming call and yield each Server-Sent Event ``parse`` recognises.

        With several servers, opening the stream goes to the next one as :meth:`send` does;
        once it is open, a broken stream raises."""
        servers = self._servers
        order = servers.order()
        for attempt, index in enumerate(order):
            http, _ = self._endpoint(index)
            last = attempt == len(order) - 1
            opened = False
            try:
                async with aconnect_sse(
                    http,
                    call.method,
                    call.path,
                    params=call.params,
                    content=call.content,
                    headers=request_headers(call.token, call.content_type),
                    timeout=httpx.Timeout(self._timeout, read=None),
                ) as source:
                    response = source.response
                    if not last and response.status_code in FAILOVER_STATUSES and call.repeatable:
                        servers.moving_on(index, f"answered {response.status_code}")
                        continue
                    if response.status_code >= 400:
                        await response.aread()
                    check_response(response)
                    opened = True
                    servers.answered(index)
                    async for sse in source.aiter_sse():
                        frame = parse(sse.event, sse.data)
                        if frame is not None:
                            yield frame
                    return
            except httpx.TransportError as exc:
                if opened or last or not (not_sent(exc) or call.repeatable):
                    if len(servers) == 1:
                        raise unreachable(exc, http.base_url) from exc
                    raise servers.unreachable(exc, order[: attempt + 1]) from exc
                servers.moving_on(index, f"failed: {exc or type(exc).__name__}")

    # -- health --------------------------------------------------------------------------------

    async def health(self) -> HealthResponse:
        return await self.send(calls.health())
