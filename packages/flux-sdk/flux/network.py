"""Which host names and addresses only this machine can reach: the one rule the server (for
its authentication and its ``Host`` checks) and flux-mcp (for its bearer tokens) apply."""

from __future__ import annotations

import ipaddress

__all__ = ["LOOPBACK_NAMES", "is_loopback"]

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
"""Names that resolve to loopback on every system (and any name under ``.localhost``)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name, an address, or an IPv6 address in brackets) is reachable from
    this machine only. (The server's gate remembers its answer per ``Host`` header.)"""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
