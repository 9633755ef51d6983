"""Whether the server requires credentials, decided from where it listens.

A server bound to loopback is reachable only from this machine, where it runs as it always
did: without keys. Bound to any other address (``0.0.0.0`` included) it requires API keys,
unless told ``server.auth = "off"`` together with ``--insecure``.
"""

from __future__ import annotations

import logging

from flux.errors import UsageError
from flux.network import is_loopback

from flux_server.options import ServerOptions

__all__ = ["AUTH_MODES", "auth_required", "warn_if_insecure"]

log = logging.getLogger("flux.server.security")

AUTH_MODES = ("auto", "on", "off")


def auth_required(options: ServerOptions) -> bool:
    """Whether API keys are required, from ``options.auth`` and the bind address.

    Raises:
        UsageError: an unknown mode, or ``off`` on an address other than loopback without
            ``insecure``.
    """
    mode = options.auth
    if mode not in AUTH_MODES:
        raise UsageError(f"server.auth must be one of {', '.join(AUTH_MODES)}, got {mode!r}")
    exposed = not is_loopback(options.host)
    if mode == "off" and exposed:
        if not options.insecure:
            raise UsageError(
                f"refusing to serve {options.host!r} without authentication: anyone who can "
                "reach that address could read every secret and run code on the workers. Drop "
                "server.auth=off (FLUX_SERVER__AUTH) to require API keys, bind to 127.0.0.1, "
                "or pass --insecure if a proxy in front authenticates every request"
            )
    if mode == "on":
        return True
    return mode == "auto" and exposed


def warn_if_insecure(options: ServerOptions) -> None:
    """Log loudly when the server is about to serve another address than loopback without
    authentication (``--insecure``)."""
    if options.auth == "off" and not is_loopback(options.host):
        log.warning(
            "INSECURE: serving %r with authentication OFF (--insecure): anyone who can reach "
            "it can read every secret, run code on the workers and cancel anything",
            options.host,
        )
