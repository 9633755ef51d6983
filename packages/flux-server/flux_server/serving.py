"""Serving with uvicorn, draining on SIGTERM: the runtime stops taking work before uvicorn
stops accepting connections and waits (up to ``server.drain_timeout``) for the requests in
flight, so a replica can be replaced without losing or stalling anything."""

from __future__ import annotations

import os
import socket
from typing import Any

import uvicorn
from fastapi import FastAPI
from flux.errors import UsageError

from flux_server.options import ServerOptions

__all__ = ["DrainingServer", "check_tls", "serve"]


class DrainingServer(uvicorn.Server):
    """uvicorn's server; its shutdown (SIGTERM, SIGINT) first drains the Flux runtime of its
    application (:meth:`flux_server.runtime.Runtime.drain`)."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        runtime = getattr(getattr(self.config.app, "state", None), "runtime", None)
        if runtime is not None:
            await runtime.drain()
        await super().shutdown(sockets)


def check_tls(options: ServerOptions) -> None:
    """Raises UsageError unless TLS is off or given a readable certificate and key."""
    given = {"tls_certfile": options.tls_certfile, "tls_keyfile": options.tls_keyfile}
    if not any(given.values()):
        return
    for name, value in given.items():
        if not value:
            raise UsageError(f"server.{name} is missing: HTTPS needs a certificate and its key")
    for name, value in given.items():
        if not os.access(str(value), os.R_OK):
            raise UsageError(f"server.{name} {value!r} is not a file this server can read")


def serve(app: FastAPI, options: ServerOptions, log_level: str, log_format: str = "text") -> None:
    """Serve ``app`` on ``options.host:options.port`` until SIGTERM or SIGINT, then drain.
    ``log_format``: ``"json"`` leaves uvicorn's records to the root logger's JSON formatter."""
    extra: dict[str, Any] = {"log_config": None} if log_format == "json" else {}
    if options.tls_certfile or options.tls_keyfile:
        # HTTPS without a proxy in front: uvicorn's TLS (the key stays in its file).
        extra.update(ssl_certfile=options.tls_certfile, ssl_keyfile=options.tls_keyfile)
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level=log_level,
        # Longer than clients keep idle connections (httpx: 5 s), so a client never reuses a
        # connection the server is closing at that moment (a POST would fail half-sent).
        timeout_keep_alive=65,
        # uvicorn waits this long as a float (its annotation says int).
        timeout_graceful_shutdown=options.drain_timeout,  # type: ignore[arg-type]
        **extra,
    )
    DrainingServer(config).run()
