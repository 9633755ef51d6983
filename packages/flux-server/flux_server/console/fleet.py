"""``/console/workers`` and ``/console/secrets``: the fleet and what it may use.

Secrets are listed by name and date only: this module never reads a value, so none can
reach a page.
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from flux_server.console._render import render_page
from flux_server.console._route import console_router, runtime_of

__all__ = ["router"]

router = console_router()


@router.get("/workers")
async def workers_page(request: Request) -> Response:
    workers = await runtime_of(request).workers.list()
    return render_page(request, "workers.html", nav="workers", workers=workers)


@router.get("/secrets")
async def secrets_page(request: Request) -> Response:
    secrets = await runtime_of(request).secrets.list()
    return render_page(request, "secrets.html", nav="secrets", secrets=secrets)
