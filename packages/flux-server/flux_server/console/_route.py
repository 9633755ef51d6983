"""The route class every console page uses, and the helpers its handlers share.

:class:`ConsoleRoute` wraps each handler: it hands the page this browser's CSRF token, checks
the token and origin of every POST before the handler runs, renders a Flux error as an HTML
page with the error's status (the API's JSON shape is for programs), and puts the security
headers on every answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from flux.errors import FluxError, UsageError
from starlette.responses import Response

from flux_server.api.deps import parse_json
from flux_server.console import _security
from flux_server.console._render import render_page
from flux_server.errors import status_of
from flux_server.runtime import Runtime

__all__ = ["ConsoleRoute", "console_router", "form_text", "json_field", "runtime_of"]

log = logging.getLogger(__name__)


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            token, new = _security.csrf_token(request)
            request.state.csrf = token
            request.state.identity = _security.identify(request)
            try:
                if request.method == "POST":
                    _security.check_form(request, await request.form())
                response = await handler(request)
            except FluxError as exc:
                status = status_of(exc)
                if status >= 500:
                    log.error("console page failed: %s", exc, exc_info=exc)
                response = render_page(
                    request, "error.html", status, status=status, message=exc.message
                )
            for key, value in _security.HEADERS.items():
                response.headers.setdefault(key, value)
            if new:
                _security.set_cookie(request, response, _security.CSRF_COOKIE, token)
            return response

        return console_handler


def console_router() -> APIRouter:
    """A router for console pages (left out of the API's OpenAPI schema)."""
    return APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def form_text(request: Request, name: str, default: str = "") -> str:
    """A form field as text (``default`` when absent)."""
    value = (await request.form()).get(name)
    return value if isinstance(value, str) else default


def json_field(text: str, what: str) -> Any:
    """``text`` read as JSON (empty is ``null``).

    Raises:
        UsageError: it is not JSON; the message says where.
    """
    if not text.strip():
        return None
    try:
        return parse_json(text.encode())
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc.msg}") from None
