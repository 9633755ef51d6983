"""What keeps the console's pages and forms safe in a browser: the headers every answer
carries, the CSRF check of every form, and one-shot notices carried across a redirect.

A form that changes state passes two checks: its request comes from a page of this server
(``Origin``, else ``Referer``, names the host the request was sent to; a browser always sends
one of them with a POST), and it carries the token this browser holds in its ``flux_csrf``
cookie (HttpOnly, SameSite=Strict, scoped to ``/console``), which another site can neither
read nor make the browser send.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from flux.errors import ApiError
from starlette.responses import Response

from flux_server import notices
from flux_server.cookies import CONSOLE_PATH, set_cookie_header
from flux_server.gate import principal_of
from flux_server.notices import NOTICE_COOKIE

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "HEADERS",
    "check_form",
    "clear_flash",
    "csrf_token",
    "flash",
    "identify",
    "set_cookie",
    "take_flash",
]

CSRF_COOKIE = "flux_csrf"
CSRF_FIELD = "csrf"

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Sent with every console answer: no inline script or style, nothing from another origin,
never framed, never cached (pages show live state and carry a CSRF token)."""


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    """A cookie the console's pages alone get, that no script reads and no other site sends
    (:mod:`flux_server.cookies`)."""
    header = set_cookie_header(name, value, secure=request.url.scheme == "https")
    response.raw_headers.append((b"set-cookie", header))


def csrf_token(request: Request) -> tuple[str, bool]:
    """This browser's CSRF token, and whether it is new (the answer must set its cookie)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(token) <= 100 and token.isascii():
        return token, False
    return secrets.token_urlsafe(32), True


def _same_origin(request: Request) -> bool:
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    host = request.headers.get("host", "")
    return urlsplit(source).netloc.lower() == host.lower()


def check_form(request: Request, form: Any) -> None:
    """Refuse (403) a state-changing form that did not come from one of this console's pages.

    Raises:
        ApiError: 403, from another origin or without this browser's token.
    """
    if not _same_origin(request):
        raise ApiError(
            "this form was not sent from a page of this server (its Origin is another site's, "
            "or missing); open the console and submit it from there",
            403,
        )
    sent = form.get(CSRF_FIELD)
    held = request.cookies.get(CSRF_COOKIE)
    if not isinstance(sent, str) or not held or not hmac.compare_digest(sent, held):
        raise ApiError(
            "this form's security token is missing or out of date; reload the page and "
            "submit it again",
            403,
        )


def identify(request: Request) -> str | None:
    """Who uses the console, shown in its header with a way to log out: the key's name and
    role; ``None`` while the server's authentication is off (nobody in particular).

    The key comes from the request's ``Authorization`` or, for a browser, the ``flux_key``
    cookie its login set (:mod:`flux_server.console.login`); the gate checked it, and sends a
    page request without one to the login page.
    """
    caller = principal_of(request)
    return None if caller.kind == "anonymous" else f"{caller.name} ({caller.role or 'worker'})"


def flash(request: Request, response: Response, kind: str, text: str) -> None:
    """Show ``text`` once, on the next console page this browser opens (after a redirect)."""
    set_cookie(request, response, NOTICE_COOKIE, notices.encode(kind, text))


def take_flash(request: Request) -> tuple[str, str] | None:
    """The notice a redirect left, if any (the answer then clears it)."""
    return notices.decode(request.cookies.get(NOTICE_COOKIE))


def clear_flash(response: Response) -> None:
    response.delete_cookie(NOTICE_COOKIE, path=CONSOLE_PATH)
