"""What both clients share: request headers and the mapping of error answers to FluxErrors."""

from __future__ import annotations

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
from flux.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, ErrorBody, check_compatible

__all__ = ["base_headers", "check_response", "is_retryable", "request_headers", "unreachable"]

_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


def base_headers(extra: dict[str, str] | None) -> dict[str, str]:
    headers = {PROTOCOL_HEADER: PROTOCOL_VERSION, "User-Agent": "flux-client"}
    headers.update(extra or {})
    return headers


def request_headers(token: str | None, content_type: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


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
