"""Who may talk to flux-mcp over HTTP.

- **DNS rebinding**, always: a web page the user opens must not reach a loopback MCP server
  through a hostile domain that resolves to 127.0.0.1. The SDK protects only when it is bound
  to a loopback name and never when bound to ``0.0.0.0``; flux-mcp always passes its own
  :class:`~mcp.server.transport_security.TransportSecuritySettings`: loopback names, the bind
  address and ``allowed_hosts`` are accepted as ``Host`` (others get 421), loopback origins and
  ``allowed_origins`` as ``Origin`` (others get 403).
- **Bearer tokens** (``mcp.auth``; ``auto``: beyond loopback): every HTTP request must carry
  ``Authorization: Bearer <key>``, an API key of the Flux server, which :class:`FluxKeyVerifier`
  checks by asking the Flux server who it is (``GET /auth/whoami``); a missing or refused one
  gets 401. A key whose role only reads (``viewer``) is offered only the tools that change
  nothing (:func:`may_change`): flux-mcp acts with its own credential, and must not lend it
  to a caller the Flux server would not let do the same.
- **Exposure**: :func:`check_exposure` refuses an HTTP bind beyond loopback without tokens
  unless ``--insecure``, and a bind with tokens when the Flux server cannot check them (its own
  authentication off: everyone is ``anonymous`` there, so any token would pass).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any

from flux.client import AsyncFluxClient
from flux.errors import ApiError, FluxError, UsageError
from flux.network import is_loopback

from flux_mcp.config import McpConfig

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.transport_security import TransportSecuritySettings

__all__ = [
    "WRITE_ROLES",
    "FluxKeyVerifier",
    "allowed_hosts",
    "allowed_origins",
    "caller_role",
    "check_exposure",
    "inbound_auth",
    "may_change",
    "transport_security",
]

WRITE_ROLES = frozenset({"admin", "operator"})
"""Roles of Flux API keys that may change things (run, resume, cancel, upload, schedule)."""

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


class FluxKeyVerifier:
    """Checks a bearer token by asking the Flux server whose key it is (``GET /auth/whoami``
    with the token as the credential). Only an API key passes (``kind == "key"``): a worker's
    session token does not, nor anything while the Flux server's authentication is off.

    Answers are kept ``ttl`` seconds, by the token's SHA-256, refusals too: a revoked key stops
    working within ``ttl``, and a client that repeats a wrong token costs the Flux server one
    check per ``ttl``.
    """

    def __init__(self, server_url: str, *, ttl: float = 30.0, max_entries: int = 10_000) -> None:
        self._server_url = server_url
        self._ttl = ttl
        self._max_entries = max_entries
        self._known: dict[bytes, tuple[float, AccessToken | None]] = {}

    async def verify_token(self, token: str) -> AccessToken | None:
        digest = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        known = self._known.get(digest)
        if known is not None and known[0] > now:
            return known[1]
        try:
            async with AsyncFluxClient(self._server_url, api_key=token, timeout=10) as flux:
                me = await flux.whoami()
        except ApiError as exc:
            if exc.status_code not in (401, 403):
                # Not an answer about the token (the Flux server is down): refuse, keep nothing.
                _log.warning("cannot check a bearer token with the Flux server: %s", exc)
                return None
            access = None
        else:
            access = _access_of(token, me) if me.kind == "key" and me.authentication else None
        if len(self._known) >= self._max_entries:
            self._known = {k: v for k, v in self._known.items() if v[0] > now}
            if len(self._known) >= self._max_entries:
                self._known.clear()
        self._known[digest] = (now + self._ttl, access)
        return access


def _access_of(token: str, me: Any) -> AccessToken:
    from mcp.server.auth.provider import AccessToken

    expires = None if me.expires_at is None else int(me.expires_at.timestamp())
    return AccessToken(
        token=token,
        client_id=me.key_id or me.name,
        subject=me.name,
        scopes=[me.role],
        expires_at=expires,
    )


def caller_role() -> str | None:
    """The role of the API key the current HTTP request came with; ``None`` without one
    (stdio, in memory, or an HTTP transport that checks no tokens)."""
    from mcp.server.auth.middleware.auth_context import get_access_token

    access = get_access_token()
    if access is None:
        return None
    return access.scopes[0] if access.scopes else ""


def may_change() -> str | None:
    """Why the current caller may not use a tool that changes things, or ``None`` if it may."""
    role = caller_role()
    if role is None or role in WRITE_ROLES:
        return None
    return (
        f"The API key you connected with has role {role!r}, which may only read, and this "
        "tool changes things. Use the read tools, or ask the user for a key with role "
        "'operator'."
    )


def inbound_auth(config: McpConfig) -> tuple[FluxKeyVerifier, AuthSettings] | None:
    """How the HTTP transports check bearer tokens, ``None`` when they do not
    (``config.checks_tokens``)."""
    if not config.checks_tokens:
        return None
    from mcp.server.auth.settings import AuthSettings
    from pydantic import ValidationError

    # flux-mcp is a resource server whose tokens the Flux server issues; it publishes no OAuth
    # metadata (resource_server_url None): clients are given a key, not sent through a flow.
    try:
        settings = AuthSettings.model_validate(
            {"issuer_url": config.server_url, "resource_server_url": None}
        )
    except ValidationError:
        raise UsageError(
            f"mcp.server_url must be an http(s) URL, got {config.server_url!r}"
        ) from None
    return FluxKeyVerifier(config.server_url), settings


def check_exposure(config: McpConfig) -> None:
    """Refuse what would leave flux-mcp open: an HTTP bind beyond loopback without bearer
    tokens (unless ``insecure``, which is logged), or tokens the Flux server cannot check.

    Raises:
        UsageError: either, with what to do instead.
    """
    if config.transport == "stdio":
        return
    if config.checks_tokens:
        _check_flux_checks_keys(config)
        return
    if not config.exposed:
        return
    if not config.insecure:
        raise UsageError(
            f"refusing to serve {config.transport} on {config.host!r} without authentication "
            "(mcp.auth = 'off'): other machines could reach it. Leave mcp.auth at 'auto' so "
            "clients must send a Flux API key, bind to loopback (--host 127.0.0.1), or pass "
            "--insecure to serve without authentication"
        )
    _log.warning(
        "flux-mcp serves %s on %r WITHOUT AUTHENTICATION (--insecure): anyone who can reach "
        "it can run, resume and cancel workflows with flux-mcp's credentials",
        config.transport,
        config.host,
    )


def _check_flux_checks_keys(config: McpConfig) -> None:
    async def ask() -> Any:
        async with AsyncFluxClient(config.server_url, api_key=config.api_key, timeout=10) as flux:
            return await flux.whoami()

    try:
        me = asyncio.run(ask())
    except FluxError as exc:
        raise UsageError(
            f"flux-mcp checks bearer tokens with the Flux server at {config.server_url}, and "
            f"cannot ask it: {exc}. Start it first, or set mcp.api_key to a key it accepts"
        ) from None
    if not me.authentication:
        raise UsageError(
            f"the Flux server at {config.server_url} does not check API keys (its "
            "authentication is off), so flux-mcp cannot check the bearer tokens of its clients "
            "against it. Turn the server's authentication on (server.auth = 'on'), or set "
            "mcp.auth = 'off' and bind flux-mcp to loopback"
        )
