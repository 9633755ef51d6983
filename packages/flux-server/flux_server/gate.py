"""ASGI middleware in front of every route: who is calling, and may they. Its checks
(:meth:`GateMiddleware.check`) are the fast path's too, which asks them itself
(:mod:`flux_server.fastpath`).

For each request, before the application sees it:

1. while authentication is off, a ``Host`` that is neither loopback nor configured is refused
   (DNS rebinding; :mod:`flux_server.browsers`);
2. ``OPTIONS`` answers with the path's methods in ``Allow``; a method the path does not take
   gets 405 with the same ``Allow``;
3. a state-changing request from another web origin is refused (403), and a JSON endpoint
   takes only ``application/json`` bodies (415);
4. while authentication is on, the bearer token is resolved to a :class:`Principal` (401 when
   it is missing or unknown, 429 once an address failed too often) and checked against the
   route's entry in :data:`flux_server.access.ROUTE_ACCESS` (403 naming the role needed).

Worker routes and registration check their own tokens, as they always did; their 401s count
as failures too, as do a route's own 401s (a failed console login). The caller is left in
the scope for the routes (:func:`principal_of`).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import params
from fastapi.routing import APIRoute
from flux.errors import ApiError
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flux_server import notices
from flux_server.access import ROUTE_ACCESS, Access, RouteTable, Rule, allows, routes_of
from flux_server.browsers import foreign_origin, host_allowed, is_json
from flux_server.cookies import CONSOLE_PATH, set_cookie_header
from flux_server.guard import Answer, send_json
from flux_server.limiter import FailureLimiter
from flux_server.notices import NOTICE_COOKIE
from flux_server.options import ServerOptions
from flux_server.principals import ANONYMOUS, Principal

if TYPE_CHECKING:
    from fastapi import FastAPI

    from flux_server.runtime import Runtime

__all__ = ["GateMiddleware", "principal_of"]

_PRINCIPAL = "flux.principal"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_OWN_TOKENS = frozenset({Access.WORKER, Access.BOOTSTRAP})
KEY_COOKIE = "flux_key"
"""The console's cookie holding a browser's API key (see :mod:`flux_server.console.login`)."""
HOW_TO_AUTHENTICATE = (
    "send 'Authorization: Bearer <API key>' (the flux CLI and flux.client read FLUX_API_KEY, "
    "api_key in flux.toml, or the admin key the server wrote to admin-key in its Flux home); "
    "an admin creates keys with `flux auth key create`"
)


def principal_of(request: Request) -> Principal:
    """Who made ``request`` (anonymous while authentication is off)."""
    found: Principal = request.scope.get(_PRINCIPAL, ANONYMOUS)
    return found


class GateMiddleware:
    def __init__(self, app: ASGIApp, options: ServerOptions, required: bool) -> None:
        self.app = app
        self.required = required
        self.allowed_hosts = frozenset(h.strip().lower() for h in options.allowed_hosts)
        self.trusted_origins = frozenset(options.cors_origins)
        self.limiter = FailureLimiter(options.auth_failure_limit, options.auth_failure_window)
        self.public_metrics = options.metrics_public
        self._table: RouteTable | None = None
        self._json: frozenset[tuple[str, str]] = frozenset()
        self._hosts: dict[bytes | None, bool] = {}
        """Whether each ``Host`` seen lately may be served while authentication is off."""
        self._types: dict[bytes, bool] = {}
        """Whether each ``Content-Type`` seen lately is JSON."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = await self.check(scope)
        if refusal is not None:
            await refusal(send)
            return
        await self.app(scope, receive, self._counting(send, _address(scope)))

    async def check(self, scope: Scope) -> Answer | None:
        """The gate's answer to an HTTP request (a refusal, a redirect to the console's login,
        or ``OPTIONS``' and 405's ``Allow``); ``None`` when it may go on, the caller then in
        the scope (:func:`principal_of`). A 401 the route itself answers (a worker's token)
        is counted by :meth:`__call__`, not here."""
        table = self._table or self._build(scope["app"])
        headers = dict(scope["headers"])  # values decoded where read: most are not
        host = headers.get(b"host")
        if not self.required and not self._host_allowed(host):
            host = _text(host)
            return _refusing(
                403,
                f"this server does not answer to the host name {host!r} while its "
                "authentication is off (a web page may have pointed that name at this machine); "
                "use localhost, or add the name to server.allowed_hosts",
            )
        method: str = scope["method"]
        found = table.match(method, scope["path"])
        if found is not None and (method == "OPTIONS" or found.rule is None):
            return partial(_allow, method=method, allowed=found.allowed)
        rule = found.rule if found is not None else None
        changes = method not in _SAFE or (rule is not None and rule.changes_state)
        origin, fetch_site = headers.get(b"origin"), headers.get(b"sec-fetch-site")
        if (
            changes
            and (origin is not None or fetch_site is not None)  # else no browser's
            and foreign_origin(
                _text(origin),
                _text(fetch_site),
                _text(host),
                scope.get("scheme", "http"),
                self.trusted_origins,
            )
        ):
            page = _text(origin) or "another site"
            return _refusing(
                403,
                f"cross-origin request refused: a page of {page} may not {method} here; allow "
                "its origin in server.cors_origins if it should",
            )
        if rule is not None and rule.access == Access.PUBLIC:
            return None
        address = _address(scope)
        wait = self.limiter.retry_after(address) if self.limiter else None
        if wait is not None and (self.required or rule is None or rule.access in _OWN_TOKENS):
            return _refusing(
                429,
                f"too many failed authentications from {address}; try again in {wait} s",
                headers=[(b"retry-after", str(wait).encode())],
                retry_after=wait,
            )
        if self.required and (rule is None or rule.access not in _OWN_TOKENS):
            runtime: Runtime = scope["app"].state.runtime
            credential = _credential(headers, scope["path"])
            principal = await runtime.principals.resolve(credential)
            if principal is None:
                if credential is not None:  # a guess; asking without one is not
                    self.limiter.failed(address)
                if method == "GET" and scope["path"].startswith(CONSOLE_PATH):
                    # Back to the same page after logging in, its filters included.
                    query = scope.get("query_string", b"").decode("latin-1")
                    login = f"{CONSOLE_PATH}/login?next=" + quote(
                        scope["path"] + (f"?{query}" if query else "")
                    )
                    if credential is None:
                        return partial(_redirect, location=login)
                    if b"authorization" not in headers:
                        # The browser's cookie holds a key revoked or expired since its login.
                        return partial(
                            _redirect,
                            location=login + "&expired=1",
                            extra=[(b"set-cookie", _FORGET_KEY)],
                        )
                reason = (
                    "this server requires an API key"
                    if credential is None
                    else "the API key is unknown, expired or revoked"
                )
                return _refusing(401, f"{reason}: {HOW_TO_AUTHENTICATE}")
            refusal = await _refusal(runtime, principal, rule, scope, method, found)
            if refusal is not None:
                if method == "POST" and scope["path"].startswith(CONSOLE_PATH):
                    # A console form this role may not send: back to its page, saying why.
                    return partial(_back_with_notice, scope=scope, text=refusal)
                return _refusing(403, refusal)
            scope[_PRINCIPAL] = principal
        # A worker's calls carry its token, which no page can make a browser send: only
        # requests that ambient credentials (none, while authentication is off) may carry
        # need the simple-body check.
        if (
            found is not None
            and (method, found.template) in self._json
            and (rule is None or rule.access not in _OWN_TOKENS)
        ):
            problem = self._json_problem(headers)
            if problem is not None:
                return _refusing(415, problem)
        return None

    def _host_allowed(self, host: bytes | None) -> bool:
        hosts = self._hosts
        allowed = hosts.get(host)
        if allowed is None:
            if len(hosts) >= 256:
                hosts.clear()
            allowed = hosts[host] = host_allowed(_text(host), self.allowed_hosts)
        return allowed

    def _json_problem(self, headers: dict[bytes, bytes]) -> str | None:
        """Why the request's body is not one a JSON endpoint takes; ``None`` when it is."""
        content_type = headers.get(b"content-type")
        if content_type is not None:
            known = self._types.get(content_type)
            if known is None:
                if len(self._types) >= 64:
                    self._types.clear()
                known = self._types[content_type] = is_json(_text(content_type))
            if known:
                return None
            return (
                "this endpoint takes JSON: send 'Content-Type: application/json', "
                f"not {_text(content_type)!r}"
            )
        has_body = b"transfer-encoding" in headers or headers.get(b"content-length", b"0") not in (
            b"0",
            b"",
        )
        if has_body:
            return "this endpoint takes JSON: send 'Content-Type: application/json' with the body"
        return None

    def _counting(self, send: Send, address: str) -> Send:
        """``send``, counting a 401 answer (a worker's or bootstrap token the route refused)
        as a failed authentication from ``address``."""

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                self.limiter.failed(address)
            await send(message)

        return counted

    def _build(self, app: FastAPI) -> RouteTable:
        """The route table of ``app`` (built at its first request, once every route is in)."""
        routes = routes_of(app)
        self._json = frozenset((m, t) for m, t, route in routes if route and _takes_json(route))
        table = ROUTE_ACCESS
        if self.public_metrics:
            table = {
                k: Rule(Access.PUBLIC) if r.public_if_configured else r for k, r in table.items()
            }
        self._table = RouteTable(((m, t) for m, t, _ in routes), table)
        return self._table


def _text(value: bytes | None) -> str | None:
    """A header's value as text (``None`` when the request has none)."""
    return None if value is None else value.decode("latin-1")


def _credential(headers: dict[bytes, bytes], path: str) -> str | None:
    """The request's ``Authorization``; on a console page without one, the browser's key
    from the console's cookie, as that header."""
    authorization = headers.get(b"authorization")
    if authorization is None and path.startswith(CONSOLE_PATH) and b"cookie" in headers:
        key = cookie_parser(headers[b"cookie"].decode("latin-1")).get(KEY_COOKIE)
        if key:
            return f"Bearer {key}"
    return _text(authorization)


_FORGET_KEY = set_cookie_header(KEY_COOKIE, "", secure=False, max_age=0)
"""A ``Set-Cookie`` value that removes the console's key cookie."""


async def _back_with_notice(send: Send, scope: Scope, text: str) -> None:
    """303 to the console page the form was sent from (its ``Referer``, when that is this
    server's console; else the console's home), which shows ``text`` as an error once."""
    back = CONSOLE_PATH
    headers = dict(scope["headers"])
    referer = urlsplit(headers.get(b"referer", b"").decode("latin-1"))
    if referer.netloc.lower() == headers.get(b"host", b"").decode("latin-1").lower() and (
        referer.path == CONSOLE_PATH or referer.path.startswith(CONSOLE_PATH + "/")
    ):
        back = referer.path + (f"?{referer.query}" if referer.query else "")
    cookie = set_cookie_header(
        NOTICE_COOKIE, notices.encode("error", text), secure=scope.get("scheme") == "https"
    )
    await _redirect(send, back, [(b"set-cookie", cookie)])


async def _redirect(
    send: Send, location: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode()),
                (b"content-length", b"0"),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def _takes_json(route: APIRoute) -> bool:
    extra = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
    if "application/json" in extra:
        return True
    bodies = route.dependant.body_params
    return bool(bodies) and not any(isinstance(p.field_info, params.Form) for p in bodies)


async def _refusal(
    runtime: Runtime,
    principal: Principal,
    rule: Rule | None,
    scope: Scope,
    method: str,
    found: Any,
) -> str | None:
    """Why ``principal`` may not make this request; ``None`` when it may."""
    if rule is None:  # no such route: the application answers 404 to anyone authenticated
        return None
    if principal.kind != "worker":
        if allows(rule, principal.role):
            return None
        role = principal.role.value if principal.role is not None else "none"
        where = _where(method, found, scope)
        return f"{where} needs the {rule.access.value} role; {principal.describe()} has {role}"
    if rule.access == Access.AUTHENTICATED or rule.workers:
        return None
    if rule.child_runs:
        parent = _query_value(scope, "parent")
        if parent is not None and await runtime.executions.holds(principal.name, parent):
            return None
        where = _where(method, found, scope)
        return (
            f"{principal.describe()} may call {where} only to start a child of an execution "
            "it holds (?parent=<that execution's id>)"
        )
    where = _where(method, found, scope)
    return f"{principal.describe()} may call its own /workers routes only, not {where}"


def _where(method: str, found: Any, scope: Scope) -> str:
    """The request as a refusal names it (``GET /executions/{execution_id}``)."""
    return f"{method} {found.template if found is not None else scope['path']}"


def _query_value(scope: Scope, name: str) -> str | None:
    raw = scope.get("query_string", b"").decode("latin-1")
    values = parse_qs(raw).get(name)
    return values[-1] if values else None


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _allow(send: Send, method: str, allowed: tuple[str, ...]) -> None:
    methods = sorted({*allowed, *(["HEAD"] if "GET" in allowed else []), "OPTIONS"})
    allow = (b"allow", ", ".join(methods).encode())
    if method == "OPTIONS":
        await send({"type": "http.response.start", "status": 204, "headers": [allow]})
        await send({"type": "http.response.body", "body": b""})
        return
    await _refuse(
        send,
        405,
        f"{method} is not allowed here; this path takes {', '.join(methods)}",
        headers=[allow],
        code="method_not_allowed",
    )


def _refusing(status: int, message: str, **options: Any) -> Answer:
    """:func:`_refuse`'s answer, to send later."""
    return partial(_refuse, status=status, message=message, **options)


async def _refuse(
    send: Send,
    status: int,
    message: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    code: str | None = None,
    **details: Any,
) -> None:
    body = ApiError(message, status, **details).to_dict()
    if code is not None:
        body["code"] = code
    extra = list(headers or [])
    if status == 401:
        extra.append((b"www-authenticate", b"Bearer"))
    await send_json(send, status, body, extra)
