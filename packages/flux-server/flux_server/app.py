"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from flux.protocol import PROTOCOL_HEADER
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from flux_server.api import ROUTERS
from flux_server.console import install_console
from flux_server.db.urls import async_url
from flux_server.errors import install_error_handlers
from flux_server.exposure import auth_required
from flux_server.fastpath import FastPathMiddleware
from flux_server.gate import GateMiddleware
from flux_server.guard import GuardMiddleware
from flux_server.openapi import install_openapi
from flux_server.options import ServerOptions
from flux_server.runtime import Runtime
from flux_server.swagger import install_swagger
from flux_server.version import SERVER_VERSION

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from flux.config import FluxSettings

__all__ = ["create_app", "http_telemetry"]


def http_telemetry() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry (a span and metrics per HTTP request, once the process has
    a global provider): kept when a global tracer provider is installed before the app is
    made (``opentelemetry-instrument``, or the application's own), off otherwise. Flux's
    traces are per execution and its metrics are ``/metrics`` (docs/operations.md), and
    FastAPI looks for the global providers on every request when it is on: about 4.5 µs a
    request, about 2 % of the server's CPU per run (docs/decisions.md)."""
    try:
        from opentelemetry import trace
    except ImportError:  # a FastAPI without telemetry of its own
        return {}
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return {}  # FastAPI's defaults
    return {"tracing": False, "metrics": False, "logs": False}


def _front(app: ASGIApp, options: ServerOptions, required: bool) -> ASGIApp:
    """What stands in front of the routes: the guard (version, size limit) wraps the gate (who
    may call what), and the fast path, in front of both, asks them itself."""
    gate = GateMiddleware(app, options=options, required=required)
    guard = GuardMiddleware(gate, max_request_bytes=options.max_request_bytes)
    return FastPathMiddleware(guard, guard=guard, gate=gate)


def create_app(settings: FluxSettings | ServerOptions | None = None) -> FastAPI:
    """A Flux server application.

    Args:
        settings: Flux settings (default: ``flux.config.Configuration.get().settings``) or
            ready :class:`ServerOptions`.

    Starting it (its lifespan) migrates the database, loads or creates the bootstrap token and
    starts the dispatcher and the heartbeat monitor; stopping it closes worker streams.

    Raises:
        UsageError: the database URL is not supported, or authentication is off on an address
            other than loopback without ``insecure``.
    """
    options = (
        settings if isinstance(settings, ServerOptions) else ServerOptions.from_settings(settings)
    )
    async_url(options.database_url)  # fail here, not at the first request
    required = auth_required(options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(options)
        await runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Flux",
        version=SERVER_VERSION,
        summary="Durable workflow orchestration: workflows, executions and workers.",
        lifespan=lifespan,
        docs_url=None,  # served offline by install_swagger
        redoc_url=None,
        telemetry=http_telemetry(),
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    install_openapi(app)
    install_swagger(app)
    install_console(app)
    # CORS, when configured (added last, runs first), answers preflights before all.
    app.add_middleware(_front, options=options, required=required)
    if options.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(options.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", PROTOCOL_HEADER, "Last-Event-ID"],
            expose_headers=[PROTOCOL_HEADER, "X-Flux-Execution-Id", "Retry-After"],
        )
    return app
