"""Browsers as attackers: what a web page the user opened can make the browser send here.

- **DNS rebinding.** A page on ``evil.example`` whose name the attacker then points at
  127.0.0.1 talks to a loopback server as if it were its own site, with ``Host:
  evil.example``. While authentication is off, only loopback names and configured ones are
  served (:func:`host_allowed`).
- **Cross-site requests.** A page may send a form (multipart included) or a ``fetch`` without
  reading the answer, with no preflight. Browsers name the page's origin in ``Origin`` (and
  ``Sec-Fetch-Site``); a state-changing request from another origin than the server's own or a
  configured one is refused (:func:`foreign_origin`).
- **Simple bodies.** A page can send ``text/plain`` or form bodies without a preflight, never
  ``application/json``: JSON endpoints take only that (:func:`is_json`).
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from flux.network import is_loopback

__all__ = ["foreign_origin", "host_allowed", "host_name", "is_json"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_name(host: str) -> str:
    """The name of a ``Host`` header's value, without its port, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name, colon, port = host.rpartition(":")
    return name.rstrip(".") if colon and port.isdigit() else host.rstrip(".")


def host_allowed(host: str | None, allowed: Collection[str]) -> bool:
    """Whether a request with this ``Host`` may be served while authentication is off: a
    loopback name or address, a name under ``.test`` (reserved by RFC 6761: no public DNS
    record can point one at this machine, so no web page can rebind it), or one of
    ``allowed``. A request without one (HTTP/1.0) comes from no browser."""
    if host is None:
        return True
    name = host_name(host)
    return is_loopback(name) or name.endswith(".test") or name in allowed


def _origin_of(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not parts.hostname or scheme not in _DEFAULT_PORTS:
        return None
    return scheme, parts.hostname.rstrip(".").lower(), port or _DEFAULT_PORTS[scheme]


def foreign_origin(
    origin: str | None,
    fetch_site: str | None,
    host: str | None,
    scheme: str,
    trusted: Collection[str],
) -> bool:
    """Whether a request comes from a web page of another origin than this server's and
    than the ``trusted`` ones (``server.cors_origins``).

    ``origin`` is the ``Origin`` header, ``fetch_site`` the ``Sec-Fetch-Site`` header, ``host``
    the ``Host`` header and ``scheme`` the request's. Programs (curl, the Flux client) send
    neither header, and are not foreign.
    """
    if origin is not None:
        if origin in trusted:
            return False
        mine = _origin_of(f"{scheme}://{host}") if host else None
        theirs = _origin_of(origin)  # "null" (a sandboxed page, a file) is always foreign
        return theirs is None or theirs != mine
    # A browser that sends no Origin (older ones, on some GETs) still names the relation.
    return fetch_site is not None and fetch_site.lower() in ("cross-site", "same-site")


def is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` is JSON (``application/json``, or ``application/*+json``)."""
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
