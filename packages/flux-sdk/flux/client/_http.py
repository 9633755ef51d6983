"""What both clients share: request headers, the requests of each call shape, and the mapping
of error answers to FluxErrors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import ValidationError

from flux.errors import (
    ApiError,
    ConflictError,
    FluxError,
    NotFoundError,
    ProtocolError,
    error_class,
)
from flux.observability import TRACEPARENT
from flux.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, ErrorBody, check_compatible

if TYPE_CHECKING:
    from flux.client._calls import Call

__all__ = [
    "RequestTemplates",
    "base_headers",
    "check_response",
    "is_retryable",
    "keepalive_limits",
    "request_headers",
    "unreachable",
]

_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


def base_headers(extra: dict[str, str] | None, api_key: str | None = None) -> dict[str, str]:
    headers = {PROTOCOL_HEADER: PROTOCOL_VERSION, "User-Agent": "flux-client"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    headers.update(extra or {})
    return headers


def keepalive_limits(max_connections: int) -> httpx.Limits:
    """Every connection kept alive: a worker checkpointing many executions at once would
    otherwise open and close connections (httpx keeps only 20 by default)."""
    return httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)


def request_headers(
    token: str | None, content_type: str | None, traceparent: str | None = None
) -> dict[str, str]:
    headers: dict[str, str] = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if traceparent is not None:
        headers[TRACEPARENT] = traceparent
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


@dataclass(frozen=True, slots=True)
class _Template:
    url: httpx.URL
    headers: httpx.Headers
    extensions: dict[str, Any]


class RequestTemplates:
    """The :class:`httpx.Request` of each :class:`Call`, as the client's ``build_request``
    makes it: the first call of a shape (method, path, token, content type, whether it waits,
    whether it has a body) is built by ``build_request``, and later ones of that shape copy its
    URL, headers and timeout, with their own body and ``Content-Length``. Calls with query
    parameters, files or a ``traceparent`` are always built by ``build_request``.
    (``build_request`` parses and merges the URL and headers anew each time: a large part of a
    small POST's CPU.)

    The client's base URL, headers and timeout must not change once requests are built, and
    it must keep no cookies (a Cookie header would be copied).
    """

    LIMIT = 256
    """Shapes kept (the oldest is dropped): a path may name an execution."""

    def __init__(
        self, client: httpx.AsyncClient | httpx.Client, wait_timeout: httpx.Timeout
    ) -> None:
        self._client = client
        self._wait_timeout = wait_timeout
        self._templates: dict[tuple[object, ...], _Template] = {}

    def build(self, call: Call[Any]) -> httpx.Request:
        """The request that sends ``call`` (its body read, as ``build_request``'s is)."""
        if call.params or call.files or call.traceparent:
            return self._build(call)
        content = call.content or b""
        key = (call.method, call.path, call.token, call.content_type, call.wait, not content)
        template = self._templates.get(key)
        if template is None:
            request = self._build(call)
            if len(self._templates) >= self.LIMIT:
                del self._templates[next(iter(self._templates))]
            self._templates[key] = _Template(
                request.url, httpx.Headers(request.headers), dict(request.extensions)
            )
            return request
        request = httpx.Request(
            call.method,
            template.url,
            headers=template.headers,
            stream=httpx.ByteStream(content),
            extensions=template.extensions,
        )
        if content:
            request.headers["Content-Length"] = str(len(content))
        request.read()
        return request

    def _build(self, call: Call[Any]) -> httpx.Request:
        return self._client.build_request(
            call.method,
            call.path,
            params=call.params,
            content=call.content,
            files=call.files,
            headers=request_headers(call.token, call.content_type, call.traceparent),
            timeout=self._wait_timeout if call.wait else httpx.USE_CLIENT_DEFAULT,
        )


def check_response(response: httpx.Response) -> None:
    """Raise the FluxError an error answer stands for; check the server's protocol version.

    The exception is the class the answer's ``code`` names when that is a kind of what its
    status stands for (404 :class:`NotFoundError`, 409 :class:`ConflictError`, any other
    :class:`ApiError`), as the server raised it: :class:`ExecutionNotFoundError` for an
    unknown execution, :class:`ExecutionStateError` for one that cannot do that now, as a
    local run raises. Otherwise it is the status's class. ``status_code`` is the answer's;
    ``details`` hold the answer's details as a local raise holds them (``details["pauses"]``
    of a resume that named no waiting pause), and its ``type``, ``code`` and ``details`` as
    ``error_type``, ``error_code`` and ``error_details``.

    The body must have been read. Raises:
        ProtocolError: the server speaks another major protocol version (or answered 426).
        NotFoundError: 404.  ConflictError: 409.  ApiError: any other error status.
    """
    peer = response.headers.get(PROTOCOL_HEADER)
    if peer is not None and response.status_code != 426:
        check_compatible(peer, peer="server")
    status = response.status_code
    if status < 400:
        return
    body = _error_body(response)
    details = {
        **body.details,
        "error_type": body.type,
        "error_code": body.code,
        "error_details": body.details,
    }
    if status == 426:
        raise ProtocolError(body.message, status_code=status, **details)
    cls: type[ApiError] = _STATUS_CLASSES.get(status, ApiError)
    named = error_class(body.code)
    if named is not None and issubclass(named, cls):
        cls = named
    raise cls(body.message, status, **details)


_STATUS_CLASSES: dict[int, type[ApiError]] = {404: NotFoundError, 409: ConflictError}
"""What an error status stands for, whatever the code (a proxy's answer, an older server)."""


def _error_body(response: httpx.Response) -> ErrorBody:
    try:
        return ErrorBody.model_validate_json(response.content)
    except ValidationError:
        text = response.text.strip()[:500] or response.reason_phrase
        return ErrorBody(type="HTTPError", code=f"http_{response.status_code}", message=text)


def unreachable(exc: httpx.TransportError, base_url: httpx.URL) -> ApiError:
    """A network failure as an ApiError with ``status_code`` 0 (retryable)."""
    return ApiError(
        f"cannot reach the Flux server at {base_url}: {exc or type(exc).__name__}; "
        "check that it runs and the URL is right",
        0,
        unreachable=True,
    )


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed call may succeed when repeated unchanged: the server could not be
    reached (``status_code`` 0), was overloaded, or failed on its side (5xx). 4xx answers,
    including 409 (fenced: abandon the execution), are final."""
    if isinstance(exc, ApiError):
        return exc.status_code == 0 or exc.status_code in _RETRYABLE
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, FluxError)
