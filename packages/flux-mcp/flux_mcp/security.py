"""Who may talk to flux-mcp over HTTP.

- **DNS rebinding**, always: a web page the user opens must not reach a loopback MCP server
  through a hostile domain that resolves to 127.0.0.1. The SDK protects only when it is bound
  to a loopback name and never when bound to ``0.0.0.0``; flux-mcp always passes its own
  :class:`~mcp.server.transport_security.TransportSecuritySettings`: loopback names, the bind
  address and ``allowed_hosts`` are accepted as ``Host`` (others get 421), loopback origins and
  ``allowed_origins`` as ``Origin`` (others get 403).
- **Exposure**: bound beyond loopback, the HTTP transports must check bearer tokens. Checking
  them against the Flux server's API keys (``GET /auth/whoami``) needs the authentication
  endpoints of the Flux server; until flux-mcp has that check, :func:`check_exposure` refuses a
  non-loopback bind unless ``--insecure`` says to serve without it. The seam is
  :func:`inbound_auth`: what it returns goes to ``MCPServer(token_verifier=..., auth=...)``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flux.errors import UsageError

from flux_mcp.config import McpConfig, is_loopback

if TYPE_CHECKING:
    from mcp.server.auth.provider import TokenVerifier
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.transport_security import TransportSecuritySettings

__all__ = [
    "allowed_hosts",
    "allowed_origins",
    "check_exposure",
    "inbound_auth",
    "transport_security",
]

_log = logging.getLogger("flux_mcp")

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def _has_port(host: str) -> bool:
    if host.startswith("["):
        return "]:" in host
    return ":" in host


def _with_any_port(hosts: list[str]) -> list[str]:
    """Each name, and the same name with any port (``name:*``) when it names none: a client
    sends the port in ``Host`` unless it is the scheme's default."""
    out: list[str] = []
    for host in hosts:
        out.append(host)
        if not _has_port(host):
            out.append(f"{host}:*")
    return list(dict.fromkeys(out))


def _bind_name(host: str) -> str | None:
    """How a client names the bind address in ``Host``; ``None`` for a wildcard."""
    if host in _WILDCARDS:
        return None
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def allowed_hosts(config: McpConfig) -> list[str]:
    """The ``Host`` values accepted: loopback, the bind address, ``allowed_hosts``."""
    hosts = list(_LOOPBACK_HOSTS)
    bind = _bind_name(config.host)
    if bind is not None:
        hosts.append(bind)
    return _with_any_port([*hosts, *config.allowed_hosts])


def allowed_origins(config: McpConfig) -> list[str]:
    """The ``Origin`` values accepted: loopback pages, pages of the bind address and
    ``allowed_origins``. A request without ``Origin`` (not from a browser) is accepted."""
    names = list(_LOOPBACK_HOSTS)
    bind = _bind_name(config.host)
    if bind is not None and not is_loopback(config.host):
        names.append(bind)
    origins = [f"{scheme}://{name}" for name in names for scheme in ("http", "https")]
    origins += [f"{origin}:*" for origin in origins]
    return list(dict.fromkeys([*origins, *config.allowed_origins]))


def transport_security(config: McpConfig) -> TransportSecuritySettings:
    """The DNS-rebinding protection the HTTP transports run with (always on)."""
    from mcp.server.transport_security import TransportSecuritySettings

    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=allowed_hosts(config),
        allowed_origins=allowed_origins(config),
    )


def inbound_auth(config: McpConfig) -> tuple[TokenVerifier, AuthSettings] | None:
    """How the HTTP transports check the bearer token of a request, ``None`` when they do not.

    flux-mcp does not check bearer tokens yet (see the module docstring): a loopback bind is
    served without them, and :func:`check_exposure` refuses any other unless insecure.
    """
    return None


def check_exposure(config: McpConfig) -> None:
    """Refuse to serve HTTP beyond loopback without a bearer check, unless ``insecure``.

    Raises:
        UsageError: the bind is not loopback, no bearer check is available, and
            ``config.insecure`` is false.
    """
    if not config.exposed or inbound_auth(config) is not None:
        return
    if not config.insecure:
        raise UsageError(
            f"refusing to serve {config.transport} on {config.host!r}: other machines could "
            "reach it, and flux-mcp cannot check their bearer tokens yet. Bind to loopback "
            "(--host 127.0.0.1) and put an authenticating proxy in front, or pass --insecure "
            "to serve without authentication"
        )
    _log.warning(
        "flux-mcp serves %s on %r WITHOUT AUTHENTICATION (--insecure): anyone who can reach "
        "it can run, resume and cancel workflows with flux-mcp's credentials",
        config.transport,
        config.host,
    )
