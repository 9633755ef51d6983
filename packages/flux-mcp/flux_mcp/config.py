"""flux-mcp's settings: the ``mcp`` section of the Flux configuration, with the command line's
options over it.

The section is read by :mod:`flux.config` from ``FLUX_MCP__*`` variables, ``[flux.mcp]`` or
``[mcp]`` in ``flux.toml`` and ``[tool.flux.mcp]`` in ``pyproject.toml``; this module only
layers the options given on the command line and answers the questions the transports ask.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from flux.config import Configuration, MCPSettings
from flux.network import is_loopback

__all__ = ["McpConfig", "Transport"]

Transport = Literal["stdio", "streamable-http", "sse"]


@dataclass(frozen=True, slots=True, kw_only=True)
class McpConfig:
    """Everything flux-mcp runs with. Build it with :meth:`load`; the defaults live in
    :class:`flux.config.MCPSettings`."""

    name: str
    host: str
    port: int
    server_url: str
    transport: Transport
    read_only: bool
    auth: Literal["auto", "on", "off"]
    allowed_hosts: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    api_key: str | None
    sync_wait_seconds: float
    max_request_bytes: int
    insecure: bool = False
    """Serve HTTP beyond loopback without checking bearer tokens (``--insecure``)."""

    def __repr__(self) -> str:
        # The credential never shows, as in flux.config.
        shown = replace(self, api_key="***" if self.api_key else None)
        return (
            f"McpConfig(name={shown.name!r}, host={shown.host!r}, port={shown.port}, "
            f"server_url={shown.server_url!r}, transport={shown.transport!r}, "
            f"read_only={shown.read_only}, api_key={shown.api_key!r})"
        )

    @classmethod
    def from_settings(cls, settings: MCPSettings, **overrides: Any) -> McpConfig:
        """The section's values with ``overrides`` (those that are ``None`` are ignored)."""
        values = settings.model_dump()
        values.update({key: value for key, value in overrides.items() if value is not None})
        values["allowed_hosts"] = tuple(values["allowed_hosts"])
        values["allowed_origins"] = tuple(values["allowed_origins"])
        return cls(**values)

    @classmethod
    def load(cls, **overrides: Any) -> McpConfig:
        """The configured ``mcp`` section with ``overrides`` over it.

        Raises:
            flux.errors.UsageError: the configuration is invalid.
        """
        return cls.from_settings(Configuration.get().settings.mcp, **overrides)

    @property
    def exposed(self) -> bool:
        """Whether an HTTP transport would be reachable from other machines."""
        return self.transport != "stdio" and not is_loopback(self.host)

    @property
    def checks_tokens(self) -> bool:
        """Whether the HTTP transports require a bearer token (``auth``: ``auto`` is on when
        exposed); stdio never does."""
        if self.transport == "stdio":
            return False
        return self.auth == "on" or (self.auth == "auto" and self.exposed)
