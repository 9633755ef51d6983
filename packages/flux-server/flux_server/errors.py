"""One JSON shape for every error answer: ``{type, code, message, details}``, and the one
place that maps an error type to its HTTP status (:func:`status_of`).

Stores raise the domain errors of :mod:`flux.errors` (:class:`NotFoundError`,
:class:`ConflictError`, :class:`UsageError`...) without a status; the client raises the same
class again from the answer's ``code``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from flux.errors import (
    ApiError,
    ConflictError,
    FluxError,
    NotFoundError,
    ProtocolError,
    SerializationError,
    UsageError,
)
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

__all__ = ["error_response", "install_error_handlers", "status_of"]

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    426: "protocol_version",
}


_STATUS: dict[type[FluxError], int] = {
    NotFoundError: 404,  # ExecutionNotFoundError, SecretNotFoundError too
    ConflictError: 409,  # ExecutionStateError too
    UsageError: 400,
    SerializationError: 400,
    ProtocolError: 426,
}
"""The HTTP status of each error type (and its subclasses); any other is a server failure."""


def status_of(exc: FluxError) -> int:
    """The status of an answer with ``exc``: its own when an HTTP layer set one (401, 403),
    else its type's (:data:`_STATUS`), else 500."""
    if isinstance(exc, ApiError) and exc.status_code is not None:
        return exc.status_code
    return next((_STATUS[c] for c in type(exc).__mro__ if c in _STATUS), 500)


def error_response(status: int, body: dict[str, Any]) -> JSONResponse:
    headers = _HEADERS.get(status)
    return JSONResponse(body, status_code=status, headers=headers)


_HEADERS = {401: {"WWW-Authenticate": "Bearer"}, 503: {"Retry-After": "1"}}


def _flux_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FluxError)
    status = status_of(exc)
    body = exc.to_dict()
    if status >= 500 and status != 503:  # 503: unavailable on purpose (draining)
        log.error("request failed: %s", exc, exc_info=exc)
    return error_response(status, body)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": e.get("type"),
        }
        for e in exc.errors()
    ]
    # A body that is not JSON at all is a bad request; JSON of the wrong shape is unprocessable.
    status = 400 if any(e["type"] == "json_invalid" for e in errors) else 422
    summary = "; ".join(f"{'.'.join(e['loc'][1:] or e['loc'])}: {e['msg']}" for e in errors[:5])
    body = {
        "type": "ValidationError",
        "code": _HTTP_CODES[status],
        "message": f"invalid request: {summary}",
        "details": {"errors": errors},
    }
    return error_response(status, body)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    body = {
        "type": "HTTPError",
        "code": _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}"),
        "message": str(exc.detail),
        "details": {},
    }
    response = error_response(exc.status_code, body)
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


def _database_refused(request: Request, exc: Exception) -> JSONResponse:
    # The database rejected a value the validation let through (a bad encoding, a number out of
    # range): the request was at fault, not the server.
    log.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc)
    body = {
        "type": "DataError",
        "code": "bad_request",
        "message": "the database cannot store a value of this request; check its text and numbers",
        "details": {},
    }
    return error_response(400, body)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    body = {
        "type": "InternalError",
        "code": "internal_error",
        "message": "the server failed to handle this request; see its log",
        "details": {},
    }
    return error_response(500, body)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FluxError, _flux_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DataError, _database_refused)
    app.add_exception_handler(Exception, _unexpected)
