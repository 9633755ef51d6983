"""``/console/login`` and ``/console/logout``: a browser's API key, kept in a cookie.

While the server's authentication is on, console pages need a key like every other route.
A browser cannot add an ``Authorization`` header to a link it follows, so the login form
takes a key once and keeps it in the ``flux_key`` cookie (HttpOnly, SameSite=Strict, scoped
to ``/console``: no script reads it, no other site makes the browser send it); the gate
(:mod:`flux_server.gate`) reads it for console pages only. The key is checked on every
request, so revoking it logs the browser out at once.
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from flux_server.console import _security
from flux_server.console._render import render_page
from flux_server.console._route import console_router, form_text, runtime_of
from flux_server.cookies import CONSOLE_PATH
from flux_server.gate import KEY_COOKIE

__all__ = ["router"]

router = console_router()


def _next(target: str) -> str:
    """Where to go after logging in: a console page of this server, never another site."""
    if target.startswith("/console") and not target.startswith("/console/login"):
        return target
    return "/console"


@router.get("/login")
async def login_page(request: Request, next: str = "/console", expired: bool = False) -> Response:
    if not runtime_of(request).auth_required:
        return RedirectResponse("/console", 303)
    error = "Your key is no longer valid (revoked or expired): log in again." if expired else None
    return render_page(request, "login.html", next=_next(next), error=error)


@router.post("/login")
async def login(request: Request) -> Response:
    runtime = runtime_of(request)
    target = _next(await form_text(request, "next", "/console"))
    key = (await form_text(request, "key")).strip()
    principal = await runtime.principals.resolve(f"Bearer {key}") if key else None
    if principal is None or principal.kind != "key":
        # 401: the gate counts it as a failed authentication of this address.
        error = "That key is unknown, expired or revoked."
        return render_page(request, "login.html", 401, next=target, error=error)
    response = RedirectResponse(target, 303)
    _security.set_cookie(request, response, KEY_COOKIE, key)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/console/login", 303)
    response.delete_cookie(KEY_COOKIE, path=CONSOLE_PATH)
    return response
