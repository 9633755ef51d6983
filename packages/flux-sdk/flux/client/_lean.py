"""The async client's lean HTTP path: the httpx client and transport a worker's small JSON POSTs
(claims, checkpoints) go through, many times a second.

httpx's default transport (httpcore) spends CPU on every request in proportion to its pooled
connections, and more per request than those POSTs are worth: with it, a busy worker spent over
twice the CPU per task (see docs/decisions.md). :class:`LeanTransport` sends them over its own
HTTP/1.1 connections (:mod:`flux.client._connection`) and hands every other request to httpx's
:class:`httpx.AsyncHTTPTransport`; :func:`transport_for` installs it only where no proxy from
the environment may apply, since a client given a transport ignores those. :class:`LeanClient`
is the :class:`httpx.AsyncClient` every request goes through, without a cookie jar.
"""

from __future__ import annotations

import http.cookiejar
import logging
import time
import urllib.request
from typing import Any

import httpx

from flux.client._connection import Answer, Closed, Connection, open_connection

__all__ = ["LeanClient", "LeanTransport", "transport_for"]

IDLE_SECONDS = 30.0
"""How long a connection may sit unused before it is dropped (the server keeps them 65 s)."""

_HTTP_11 = {"http_version": b"HTTP/1.1"}


class _RefusingJar(http.cookiejar.CookieJar):
    """A cookie jar that stays empty."""

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        pass

    def extract_cookies(self, response: object, request: object) -> None:
        pass


class _NoCookies(httpx.Cookies):
    """Cookies that are never stored: the answer's headers are not read for them."""

    def __init__(self) -> None:
        super().__init__(_RefusingJar())

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class LeanClient(httpx.AsyncClient):
    """An :class:`httpx.AsyncClient` that keeps no cookies and sends the requests its
    :class:`LeanTransport` takes without httpx's per-request machinery; otherwise httpx's own.

    The Flux server sets no cookies, and for every answer httpx's cookie handling builds a
    :mod:`urllib` request and an :mod:`email` message to hand to :mod:`http.cookiejar`, which
    costs more CPU than the rest of what :meth:`send` does with an answer. Its ``cookies`` are
    always empty and cannot be replaced.

    :meth:`send` hands a request the transport sends itself (see :meth:`LeanTransport.handles`)
    straight to it when none of what httpx's ``send`` adds can apply to it: no auth, no event
    hooks, redirects not followed, not streamed, its timeout already set (as ``build_request``
    sets it). What comes back is what httpx's ``send`` returns for that request (a read
    :class:`httpx.Response` with its ``request``, and httpx's log line), for a quarter less CPU
    per request (docs/decisions.md, "The worker's HTTP path"); a test holds the two equal.
    """

    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        direct = isinstance(transport, LeanTransport) and not kwargs.get("mounts")
        self._lean: LeanTransport | None = transport if direct else None  # type: ignore[assignment]

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        lean = self._lean
        if (
            lean is None
            or stream
            or auth is not httpx.USE_CLIENT_DEFAULT
            or follow_redirects is not httpx.USE_CLIENT_DEFAULT
            or self.follow_redirects
            or self.auth is not None
            or self.event_hooks["request"]
            or self.event_hooks["response"]
            or self.is_closed
            or "timeout" not in request.extensions
            or not lean.handles(request)
        ):
            return await super().send(
                request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
        response = await lean.post(request)
        if _httpx_log.isEnabledFor(logging.INFO):
            _httpx_log.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                request.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        return response

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise AttributeError("a LeanClient keeps no cookies")


_NO_COOKIES = _NoCookies()
_httpx_log = logging.getLogger("httpx")  # the logger httpx's send writes its line to


class LeanTransport(httpx.AsyncBaseTransport):
    """An :class:`httpx.AsyncBaseTransport`: plain-HTTP POSTs whose body is in memory go over
    reused HTTP/1.1 connections of this transport; anything else (another method, TLS, a
    streamed body, a request for an event stream) goes to an :class:`httpx.AsyncHTTPTransport`
    with the same ``limits``. Its own answers come back read, as :class:`httpx.MockTransport`'s
    do (so without ``elapsed``).

    Errors are httpx's: :class:`httpx.ConnectError`, :class:`httpx.ConnectTimeout`,
    :class:`httpx.ReadTimeout`, :class:`httpx.ReadError`, :class:`httpx.RemoteProtocolError`.
    """

    def __init__(self, *, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._fallback = httpx.AsyncHTTPTransport(limits=limits)
        self._max_idle = limits.max_keepalive_connections
        self._idle: dict[tuple[str, int], list[Connection]] = {}

    @staticmethod
    def handles(request: httpx.Request) -> bool:
        """Whether this transport sends ``request`` over its own connections (a plain-HTTP
        POST whose body is in memory and that asks for no event stream); httpx's transport
        sends the others."""
        return (
            request.method == "POST"
            and request.url.scheme == "http"
            and isinstance(request.stream, httpx.ByteStream)
            # The lean path reads a whole answer before returning it: a request that asks for
            # an event stream (or names one in any header) goes to httpx's transport.
            and not any(b"event-stream" in value for _, value in request.headers.raw)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.handles(request):
            return await self._fallback.handle_async_request(request)
        return await self.post(request)

    async def post(self, request: httpx.Request) -> httpx.Response:
        """Send a request :meth:`handles` over this transport's connections; its answer
        comes back read."""
        url = request.url
        fields = b"".join([b"%s: %s\r\n" % pair for pair in request.headers.raw])
        message = b"POST %s HTTP/1.1\r\n%s\r\n%s" % (url.raw_path, fields, request.content)
        timeouts = request.extensions.get("timeout", {})
        origin = (url.host, url.port or 80)
        conn, (status, headers, body, keep) = await self._exchange(
            origin, message, request, timeouts.get("connect"), timeouts.get("read")
        )
        idle = self._idle.setdefault(origin, [])
        if keep and (self._max_idle is None or len(idle) < self._max_idle):
            conn.idle_since = time.monotonic()
            idle.append(conn)
        else:
            conn.close()
        response = httpx.Response(
            status,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions=_HTTP_11,
            request=request,
        )
        # The body is already whole: the answer is left as ``read()`` leaves it, without
        # passing the body through httpx's decoders and chunker (identity for these answers:
        # a Content-Encoding goes the long way) so that the client finds it read.
        if b"content-encoding" in (name.lower() for name, _ in headers):
            response.read()
        else:
            response._content = body
            response.is_stream_consumed = response.is_closed = True
        return response

    async def _exchange(
        self,
        origin: tuple[str, int],
        message: bytes,
        request: httpx.Request,
        connect: float | None,
        read: float | None,
    ) -> tuple[Connection, Answer]:
        conn = self._reuse(origin)
        reused = conn is not None
        try:
            if conn is None:
                conn = await _connect(origin, connect, request)
            try:
                answer = await conn.exchange(message, read)
            except Closed:
                # A kept connection the server had already dropped (its keep-alive ran out
                # while the request was on its way): the request never reached the route,
                # so it goes once more on a new connection, as browsers do.
                conn.close()
                if not reused:
                    raise
                conn = await _connect(origin, connect, request)
                answer = await conn.exchange(message, read)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            error = _as_httpx(exc, request)
            if error is None or error is exc:
                raise
            raise error from exc
        return conn, answer

    def _reuse(self, origin: tuple[str, int]) -> Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if now - conn.idle_since < IDLE_SECONDS and conn.usable():
                return conn
            conn.close()
        return None

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        conns = [conn for conns in idle.values() for conn in conns]
        for conn in conns:
            conn.close()
        for conn in conns:
            await conn.closed
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
) -> Connection:
    try:
        return await open_connection(origin, timeout)
    except TimeoutError as exc:
        raise httpx.ConnectTimeout("timed out connecting", request=request) from exc
    except OSError as exc:
        raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc


def _as_httpx(exc: BaseException, request: httpx.Request) -> httpx.TransportError | None:
    """The httpx error a failed exchange stands for (None: not an exchange's failure)."""
    if isinstance(exc, httpx.TransportError):
        return exc
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout("timed out waiting for the answer", request=request)
    if isinstance(exc, Closed | ConnectionError):
        return httpx.ReadError(str(exc) or "the server closed the connection", request=request)
    if isinstance(exc, ValueError | EOFError):
        return httpx.RemoteProtocolError(f"malformed answer: {exc!r}", request=request)
    return None
