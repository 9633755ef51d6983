"""Who may call each route: the one table (:data:`ROUTE_ACCESS`), and the matcher that finds a
request's entry before the application routes it.

``docs/security.md`` shows the same table; a test holds the two and the application's routes
to each other, so a route added without an entry fails it. At run time a route missing from
the table needs the admin role.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from flux.protocol import Role
from starlette.routing import Mount

__all__ = [
    "ROUTE_ACCESS",
    "Access",
    "RouteMatch",
    "RouteTable",
    "Rule",
    "allows",
    "routes_of",
]


class Access(StrEnum):
    """Who may call a route."""

    PUBLIC = "public"
    """Anyone, without credentials."""
    AUTHENTICATED = "authenticated"
    """Any caller with credentials: an API key of any role, or a worker."""
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    WORKER = "worker"
    """The worker named in the path, by its session token (the route checks it)."""
    BOOTSTRAP = "bootstrap"
    """A worker registering, by the bootstrap token (the route checks it)."""


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
_NEEDS = {Access.VIEWER: Role.VIEWER, Access.OPERATOR: Role.OPERATOR, Access.ADMIN: Role.ADMIN}


@dataclass(frozen=True, slots=True)
class Rule:
    """A route's entry in the table.

    Attributes:
        access: who may call it.
        child_runs: a worker may call it too, to start (or read) a child execution of one it
            holds (``?parent=<execution id>``).
        workers: any worker may call it too, with its session token (long-term memory, which
            every worker's executions share).
        changes_state: a ``GET`` that changes something (cancel), refused across sites as a
            ``POST`` is.
        public_if_configured: public where the server is told so (``/metrics`` with
            ``server.metrics_public``, for a scraper without a key).
    """

    access: Access
    child_runs: bool = False
    workers: bool = False
    changes_state: bool = False
    public_if_configured: bool = False

    def describe(self) -> str:
        """The rule as ``docs/security.md`` shows it."""
        text = self.access.value
        if self.child_runs:
            text += "; a worker, for a child of an execution it holds"
        if self.workers:
            text += "; any worker"
        if self.changes_state:
            text += "; changes state"
        if self.public_if_configured:
            text += "; public with server.metrics_public"
        return text


def _rule(access: Access, **flags: bool) -> Rule:
    return Rule(access, **flags)


PUBLIC, AUTHENTICATED = _rule(Access.PUBLIC), _rule(Access.AUTHENTICATED)
VIEWER, OPERATOR, ADMIN = _rule(Access.VIEWER), _rule(Access.OPERATOR), _rule(Access.ADMIN)
WORKER, BOOTSTRAP = _rule(Access.WORKER), _rule(Access.BOOTSTRAP)

ROUTE_ACCESS: dict[tuple[str, str], Rule] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/assets/{path:path}"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/metrics"): _rule(Access.VIEWER, public_if_configured=True),
    ("GET", "/auth/whoami"): AUTHENTICATED,
    ("POST", "/workflows"): OPERATOR,
    ("GET", "/workflows"): VIEWER,
    ("GET", "/workflows/{name}"): VIEWER,
    ("POST", "/workflows/{name}/run/{mode}"): _rule(Access.OPERATOR, child_runs=True),
    ("POST", "/workflows/{name}/resume/{execution_id}/{mode}"): OPERATOR,
    ("GET", "/workflows/{name}/status/{execution_id}"): VIEWER,
    ("GET", "/workflows/{name}/cancel/{execution_id}"): _rule(Access.OPERATOR, changes_state=True),
    ("GET", "/executions"): VIEWER,
    ("POST", "/executions/cancel"): OPERATOR,
    ("GET", "/executions/{execution_id}"): VIEWER,
    ("GET", "/executions/{execution_id}/events"): VIEWER,
    ("GET", "/executions/{execution_id}/stream"): VIEWER,
    ("POST", "/executions/{execution_id}/rerun"): OPERATOR,
    ("POST", "/executions/prune"): ADMIN,
    ("GET", "/workers"): VIEWER,
    ("POST", "/workers/register"): BOOTSTRAP,
    ("GET", "/workers/{name}/connect"): WORKER,
    ("POST", "/workers/{name}/claim/{execution_id}"): WORKER,
    ("POST", "/workers/{name}/claims"): WORKER,
    ("POST", "/workers/{name}/checkpoint/{execution_id}"): WORKER,
    ("POST", "/workers/{name}/checkpoints"): WORKER,
    ("POST", "/workers/{name}/release/{execution_id}"): WORKER,
    ("POST", "/workers/{name}/heartbeat"): WORKER,
    ("POST", "/workers/{name}/leave"): WORKER,
    ("GET", "/workers/{name}/secrets/{execution_id}"): WORKER,
    ("POST", "/workers/{name}/progress/{execution_id}"): WORKER,
    ("GET", "/schedules"): VIEWER,
    ("POST", "/schedules"): OPERATOR,
    ("GET", "/schedules/{schedule_id}"): VIEWER,
    ("PATCH", "/schedules/{schedule_id}"): OPERATOR,
    ("POST", "/schedules/{schedule_id}/pause"): OPERATOR,
    ("POST", "/schedules/{schedule_id}/resume"): OPERATOR,
    ("DELETE", "/schedules/{schedule_id}"): OPERATOR,
    ("GET", "/schedules/{schedule_id}/history"): VIEWER,
    ("GET", "/admin/secrets"): VIEWER,
    ("GET", "/admin/secrets/{name}"): ADMIN,
    ("POST", "/admin/secrets"): ADMIN,
    ("DELETE", "/admin/secrets/{name}"): ADMIN,
    ("GET", "/admin/keys"): ADMIN,
    ("POST", "/admin/keys"): ADMIN,
    ("DELETE", "/admin/keys/{key_id}"): ADMIN,
    ("GET", "/memory/{scope}"): _rule(Access.VIEWER, workers=True),
    ("GET", "/memory/{scope}/{key}"): _rule(Access.VIEWER, workers=True),
    ("PUT", "/memory/{scope}/{key}"): _rule(Access.OPERATOR, workers=True),
    ("DELETE", "/memory/{scope}/{key}"): _rule(Access.OPERATOR, workers=True),
    # The console: its pages read as the API's reads do, its forms act as its writes do.
    ("GET", "/console/static/{path:path}"): PUBLIC,
    ("GET", "/console/login"): PUBLIC,
    ("POST", "/console/login"): PUBLIC,
    ("POST", "/console/logout"): PUBLIC,
    ("GET", "/console"): VIEWER,
    ("GET", "/console/executions"): VIEWER,
    ("GET", "/console/executions/cancel"): VIEWER,
    ("POST", "/console/executions/cancel"): OPERATOR,
    ("GET", "/console/executions/{execution_id}"): VIEWER,
    ("GET", "/console/executions/{execution_id}/live"): VIEWER,
    ("POST", "/console/executions/{execution_id}/rerun"): OPERATOR,
    ("POST", "/console/executions/{execution_id}/resume"): OPERATOR,
    ("GET", "/console/workflows"): VIEWER,
    ("GET", "/console/workflows/{name}"): VIEWER,
    ("POST", "/console/workflows/{name}/run"): OPERATOR,
    ("GET", "/console/schedules"): VIEWER,
    ("GET", "/console/schedules/new"): VIEWER,
    ("POST", "/console/schedules/new"): OPERATOR,
    ("GET", "/console/schedules/{schedule_id}"): VIEWER,
    ("POST", "/console/schedules/{schedule_id}"): OPERATOR,
    ("GET", "/console/schedules/{schedule_id}/delete"): VIEWER,
    ("POST", "/console/schedules/{schedule_id}/delete"): OPERATOR,
    ("POST", "/console/schedules/{schedule_id}/pause"): OPERATOR,
    ("POST", "/console/schedules/{schedule_id}/resume"): OPERATOR,
    ("GET", "/console/workers"): VIEWER,
    ("GET", "/console/secrets"): VIEWER,
}
"""Every route of the application by (method, path template): who may call it. ``HEAD``
follows ``GET``."""

UNLISTED = ADMIN
"""The rule of a route missing from the table: admins only, until someone decides."""


def routes_of(app: FastAPI) -> list[tuple[str, str, APIRoute | None]]:
    """Every ``(method, template, route)`` of ``app`` in routing order, a mount's files as
    ``GET {mount}/{path:path}`` (``route`` is the :class:`APIRoute`, else ``None``)."""
    found: list[tuple[str, str, APIRoute | None]] = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        api = route if isinstance(route, APIRoute) else None
        path = context.path or ""
        found += [(method, path, api) for method in sorted(context.methods or ())]
    found += [
        ("GET", f"{route.path}/{{path:path}}", None)
        for route in app.router.routes
        if isinstance(route, Mount)
    ]
    return found


def allows(rule: Rule, role: Role | None) -> bool:
    """Whether an API key with ``role`` may call a route with ``rule`` (a worker's routes and
    registration take their own tokens, never a key)."""
    if rule.access in (Access.PUBLIC, Access.AUTHENTICATED):
        return True
    needed = _NEEDS.get(rule.access)
    return needed is not None and role is not None and _RANK[role] >= _RANK[needed]


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A request's route: its rule, template and path parameters; or, when the path exists
    only for other methods, ``rule`` is ``None`` and ``allowed`` lists those methods."""

    rule: Rule | None
    template: str | None
    parameters: Mapping[str, str]
    """Read-only: a match is shared by every request to its path."""
    allowed: tuple[str, ...]


class RouteTable:
    """Finds a request's entry with one regular expression per method, the templates in the
    application's order (a request goes to the first route that takes it, as routing does).
    The answers for the last :attr:`REMEMBERED` (method, path) pairs are kept: a worker's
    checkpoints and a client's runs ask for the same few paths again and again."""

    REMEMBERED = 4096

    def __init__(self, routes: Iterable[tuple[str, str]], table: dict[tuple[str, str], Rule]):
        self._table = table
        by_method: dict[str, list[str]] = {}
        self._templates: list[str] = []
        for method, template in routes:
            by_method.setdefault(method, []).append(template)
            if template not in self._templates:
                self._templates.append(template)
        if "GET" in by_method:
            by_method.setdefault("HEAD", list(by_method["GET"]))
        self._methods = {m: _compile(t) for m, t in by_method.items()}
        self._any = _compile(self._templates)
        self._allowed = {
            t: tuple(sorted(m for m, ts in by_method.items() if t in ts)) for t in self._templates
        }
        self._seen: dict[tuple[str, str], RouteMatch | None] = {}
        self.unlisted = sorted(
            f"{m} {t}" for m, ts in by_method.items() if m != "HEAD" for t in ts
            if (m, t) not in table
        )  # fmt: skip
        """Routes of the application missing from the table."""

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The request's entry; ``None`` when no route has this path."""
        key = (method, path)
        try:
            return self._seen[key]
        except KeyError:
            pass
        if len(self._seen) >= self.REMEMBERED:
            self._seen.clear()  # paths naming executions come and go: start again
        found = self._seen[key] = self._match(method, path)
        return found

    def _match(self, method: str, path: str) -> RouteMatch | None:
        compiled = self._methods.get(method)
        if compiled is not None:
            found = _find(compiled, path)
            if found is not None:
                template, parameters = found
                key = ("GET" if method == "HEAD" else method, template)
                rule = self._table.get(key, UNLISTED)
                return RouteMatch(rule, template, parameters, self._allowed[template])
        found = _find(self._any, path)
        if found is None:
            return None
        template, parameters = found
        return RouteMatch(None, template, parameters, self._allowed[template])


_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")
_CONVERTOR = re.compile(r"\{\w+(:\w+)?\}")
_Compiled = tuple[re.Pattern[str], dict[int, tuple[str, int, list[str]]]]


def _compile(templates: list[str]) -> _Compiled:
    """One pattern for all ``templates``, each an alternative in a group of its own, and by
    that group's number: its template, and where its parameters' groups start and their
    names. An alternative's own group closes after its parameters' groups, so a match's
    ``lastindex`` is it."""
    alternatives: list[str] = []
    index: dict[int, tuple[str, int, list[str]]] = {}
    group = 0
    for template in templates:
        names = _PARAMETER.findall(template)
        pieces = _PARAMETER.split(template)  # text, name, text, ..., text
        parts = [re.escape(p) if i % 2 == 0 else "([^/]+)" for i, p in enumerate(pieces)]
        for i, convertor in enumerate(_CONVERTOR.findall(template)):
            if convertor == ":path":  # a mount's files: the rest of the path
                parts[2 * i + 1] = "(.*)"
        alternatives.append(f"({''.join(parts)})")
        index[group + 1] = (template, group + 1, names)
        group += 1 + len(names)
    return re.compile("|".join(alternatives)), index


def _find(compiled: _Compiled, path: str) -> tuple[str, dict[str, str]] | None:
    pattern, index = compiled
    match = pattern.fullmatch(path)
    if match is None or match.lastindex is None:
        return None
    template, group, names = index[match.lastindex]
    if not names:
        return template, {}
    values = match.groups()[group : group + len(names)]
    return template, dict(zip(names, values, strict=True))
