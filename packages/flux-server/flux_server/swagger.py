"""``/docs`` and ``/redoc``: the Swagger UI and ReDoc, their files served from the
``fastapi-offline`` package, so the pages work with no network (FastAPI's own pages load them
from a CDN, and ReDoc its fonts from Google's)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["install_swagger"]

_ASSETS = "/docs/assets"


def install_swagger(app: FastAPI) -> None:
    """Serve the Swagger UI of ``app``'s OpenAPI schema at ``/docs`` and ReDoc at ``/redoc``
    (create the app with ``docs_url=None, redoc_url=None``)."""
    assets = Path(str(files("fastapi_offline") / "static"))
    app.mount(_ASSETS, StaticFiles(directory=assets), name="swagger-assets")

    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{_ASSETS}/favicon.png",
        )

    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            redoc_js_url=f"{_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route("/docs", swagger_ui, include_in_schema=False)
    app.add_api_route("/redoc", redoc, include_in_schema=False)
