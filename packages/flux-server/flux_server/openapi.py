"""The OpenAPI document as the server answers: every status an operation may answer is
declared, each error with the one error shape (:class:`flux.protocol.ErrorBody`), and the
names, ids and modes its paths take carry their patterns.

FastAPI declares a route's own answer and a 422 in its validation shape; the others come from
layers it does not see (the guard: 400, 413, 426; the gate: 401, 403, 415, 429) or from the
stores' errors (404, 409). Which apply to an operation follows from what it is: public or
not (:data:`flux_server.access.ROUTE_ACCESS`), with path parameters or not, with a JSON body
or not; :data:`CONFLICTS` and :data:`NOT_FOUND` list the rest. A fuzzing test
(``tests/server/test_server_fuzz.py``) holds the server to this document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from flux.protocol import (
    EXECUTION_ID_PATTERN,
    WORKER_NAME_PATTERN,
    WORKFLOW_NAME_PATTERN,
    ErrorBody,
    RunMode,
)

from flux_server.access import ROUTE_ACCESS, Access

__all__ = ["CONFLICTS", "NOT_FOUND", "install_openapi"]

_REASONS = {
    400: "bad input: a body that is not JSON, a value or parameter the server refuses, a NUL "
    "in the URL (the message says which)",
    401: "credentials missing, unknown, expired or revoked (the message says how to send them)",
    403: "refused: the caller's role (named), another worker's token, a foreign web origin, or "
    "a host name the server does not answer to",
    404: "what the path names does not exist",
    409: "the current state does not allow it (the message says why)",
    413: "the request body is larger than server.max_request_bytes",
    415: "the body is not application/json",
    422: "a body or parameter of the wrong shape",
    426: "the client speaks another major protocol version",
    429: "too many failed authentications from this address; retry after Retry-After seconds",
}

CONFLICTS = frozenset(
    {
        ("POST", "/workflows/{name}/run/{mode}"),
        ("POST", "/workflows/{name}/resume/{execution_id}/{mode}"),
        ("GET", "/workflows/{name}/cancel/{execution_id}"),
        ("POST", "/executions/{execution_id}/rerun"),
        ("POST", "/workers/{name}/claim/{execution_id}"),
        ("POST", "/workers/{name}/checkpoint/{execution_id}"),
        ("POST", "/workers/{name}/release/{execution_id}"),
        ("POST", "/schedules"),
        ("PATCH", "/schedules/{schedule_id}"),
    }
)
"""Operations that answer 409 when the state does not allow them."""

NOT_FOUND = frozenset({("POST", "/schedules")})
"""Operations without path parameters that answer 404 (a workflow named in the body)."""

_WORKFLOW = {"type": "string", "pattern": WORKFLOW_NAME_PATTERN}
_PATH_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("/workflows/", "name"): _WORKFLOW,
    ("/workers/", "name"): {"type": "string", "pattern": WORKER_NAME_PATTERN},
    ("/admin/secrets/", "name"): {
        "type": "string",
        "pattern": r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$",
    },
    ("/", "execution_id"): {"type": "string", "pattern": EXECUTION_ID_PATTERN},
    ("/", "mode"): {"type": "string", "enum": [m.value for m in RunMode]},
    ("/memory/", "scope"): {"type": "string", "pattern": r"^[^/]{1,256}$"},
    ("/memory/", "key"): {"type": "string", "pattern": r"^[^/]{1,256}$"},
}
"""What a path parameter takes, by the path's start and the parameter's name."""


def install_openapi(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document declare what the server answers (built once)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            complete(build())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare every status of every operation of ``schema`` (in place), with its reason."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ErrorBody.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                _complete_operation(method.upper(), path, operation)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def _complete_operation(method: str, path: str, operation: dict[str, Any]) -> None:
    rule = ROUTE_ACCESS.get((method, path))
    access = rule.access if rule is not None else Access.ADMIN
    statuses = {400, 403, 413, 426}
    if access != Access.PUBLIC:
        statuses |= {401, 429}
    parameters = operation.get("parameters", [])
    if any(p.get("in") == "path" for p in parameters) or (method, path) in NOT_FOUND:
        statuses.add(404)
    body = operation.get("requestBody")
    if parameters or body:
        statuses.add(422)
    if body and "application/json" in body.get("content", {}):
        if access not in (Access.WORKER, Access.BOOTSTRAP):
            statuses.add(415)
    if (method, path) in CONFLICTS:
        statuses.add(409)
    responses = operation.setdefault("responses", {})
    for status in sorted(statuses):
        known = responses.get(str(status), {})
        responses[str(status)] = {
            "description": known.get("description") or _REASONS[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
            **({"headers": _RETRY_AFTER} if status == 429 else {}),
        }
    for parameter in parameters:
        if parameter.get("in") == "path":
            found = _path_schema(path, parameter["name"])
            if found is not None:
                parameter["schema"] = {**parameter.get("schema", {}), **found}


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}


def _path_schema(path: str, name: str) -> dict[str, Any] | None:
    best = None
    for (prefix, parameter), schema in _PATH_SCHEMAS.items():
        if parameter == name and path.startswith(prefix):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, schema)
    return None if best is None else best[1]
