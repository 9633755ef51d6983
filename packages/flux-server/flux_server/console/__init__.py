"""The web console: pages under ``/console`` that show what the fleet does and act on it.

Rendered on the server (Jinja2, autoescaped) from the same stores the API reads; actions are
plain HTML forms (POST, then a redirect); one small script of our own (``static/console.js``)
keeps an execution's page live over Server-Sent Events. No framework, no build, nothing
fetched from another origin: it works offline.

| module | holds |
|---|---|
| ``overview.py`` | ``/console`` |
| ``executions.py`` | the listing, bulk cancel (confirmed by id), rerun |
| ``execution.py`` | one execution: timeline, events, live stream, resume |
| ``timeline.py`` | task bars from an execution's events |
| ``workflows.py``, ``schedules.py``, ``fleet.py`` | workflows; schedules; workers and secrets |
| ``login.py`` | ``/console/login`` and ``/logout``: a browser's API key, in a cookie |
| ``_route.py`` | the route class: CSRF, error pages, headers |
| ``_render.py``, ``_security.py`` | templates and their filters; CSRF, headers, notices |
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from flux_server.console import (
    execution,
    executions,
    fleet,
    login,
    overview,
    schedules,
    workflows,
)

__all__ = ["install_console"]

STATIC = Path(__file__).parent / "static"


def install_console(app: FastAPI) -> None:
    """Serve the console under ``/console``, and send a browser opening ``/`` there."""
    for module in (login, overview, executions, execution, workflows, schedules, fleet):
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.add_api_route("/", _root, include_in_schema=False)


async def _root(request: Request) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/console", 307)
    return JSONResponse({"console": "/console", "docs": "/docs", "openapi": "/openapi.json"})
