"""What every command shares: the global options and the client they select.

The root callback stores a :class:`CliState` in the Typer context; a command takes
``ctx: typer.Context`` and calls :func:`state` (or :func:`client`) to reach the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    import httpx
    from flux.client import FluxClient
    from flux.config import FluxSettings

__all__ = ["CliState", "client", "client_host", "default_server_url", "state"]


@dataclass(slots=True)
class CliState:
    """The global options of one ``flux`` invocation.

    ``server_url`` is ``None`` unless ``--server-url`` was given; :attr:`url` then falls back to
    :func:`default_server_url`. ``transport`` lets tests answer HTTP calls in process.
    """

    server_url: str | None = None
    debug: bool = False
    transport: httpx.BaseTransport | None = None

    @property
    def url(self) -> str:
        """The server the commands talk to (the configuration is read only when needed)."""
        if self.server_url is None:
            self.server_url = default_server_url()
        return self.server_url

    def client(self) -> FluxClient:
        """A client for :attr:`url` with this machine's API key (``FLUX_API_KEY``, ``api_key``
        in ``flux.toml``, or the server's ``{home}/admin-key``); use it as a context manager."""
        from flux.client import FluxClient, default_api_key

        return FluxClient(self.url, transport=self.transport, api_key=default_api_key())


def state(ctx: typer.Context) -> CliState:
    """The invocation's :class:`CliState` (created with defaults when there is none yet)."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def client(ctx: typer.Context) -> FluxClient:
    """Shortcut for ``state(ctx).client()``."""
    return state(ctx).client()


def client_host(host: str) -> str:
    """The host a client on this machine dials for a server bound to ``host``.

    A wildcard bind address (``0.0.0.0``, ``::``) is reached through loopback; an IPv6 literal
    gets the brackets a URL needs.
    """
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "[::1]"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def default_server_url(settings: FluxSettings | None = None) -> str:
    """``http://{server_host}:{server_port}`` from the configuration: the server that
    ``flux start server`` would start here (``FLUX_SERVER_HOST``/``FLUX_SERVER_PORT``,
    ``flux.toml``, ``[tool.flux]``), with a wildcard host dialled through loopback.

    ``workers.server_url`` is deliberately not used: it is the workers' setting, and a CLI that
    followed it would disagree with the server that ``flux start server`` starts on this machine.

    Raises:
        flux.errors.UsageError: the configuration is invalid.
    """
    if settings is None:
        from flux.config import Configuration

        settings = Configuration.get().settings
    return f"http://{client_host(settings.server_host)}:{settings.server_port}"
