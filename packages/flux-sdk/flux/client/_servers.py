"""Several servers behind one client (replicas of one database): which to try, in what order,
and whether a failed call may go to the next.

A client given several URLs sends each call to the server that answered last and, when that
one cannot be reached or answers that it is going away, to the others in turn, each once. A
call goes to another server only when that cannot do its work twice:

- it never left (the connection could not be made): any call;
- it left and no answer came, or a 502/503/504 came (a proxy whose server is gone, a server
  draining): only a call that is *repeatable* (:attr:`Call.repeatable`), one whose repetition
  changes nothing, such as every read, a run or a resume whose id the client chose before the
  first attempt (:func:`new_request_id`).

Nothing here waits between attempts: the first server that answers settles the call, and when
none does the last failure is raised (``ApiError`` with ``status_code`` 0 for unreachable).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

import httpx

from flux.errors import ApiError, UsageError

__all__ = ["FAILOVER_STATUSES", "Servers", "new_request_id", "not_sent", "server_urls"]

log = logging.getLogger("flux.client")

FAILOVER_STATUSES = frozenset({502, 503, 504})
"""Answers that say this server cannot serve the call now, but another may: a gateway whose
server is gone (502, 504), a server shutting down or overloaded (503)."""


def server_urls(urls: str | Sequence[str]) -> list[str]:
    """The servers named by ``urls``: one URL, several separated by commas, or a list of
    either; in order, without duplicates or a trailing ``/``.

    Raises:
        UsageError: no URL, or one that is not ``http://`` or ``https://``.
    """
    parts = [urls] if isinstance(urls, str) else list(urls)
    found: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            raise UsageError(f"a server URL must be a string, got {part!r}")
        for url in part.split(","):
            url = url.strip().rstrip("/")
            if not url:
                continue
            if not url.startswith(("http://", "https://")):
                raise UsageError(
                    f"server URL {url!r} must start with http:// or https:// "
                    "(several URLs are separated by commas)"
                )
            if url not in found:
                found.append(url)
    if not found:
        raise UsageError(f"no server URL in {urls!r}")
    return found


def new_request_id() -> str:
    """A fresh id for a run or resume, chosen before its first attempt so that repeating the
    request on another server finds the first attempt's work instead of doing it again."""
    return uuid.uuid4().hex


def not_sent(exc: httpx.TransportError) -> bool:
    """Whether the request of a failed attempt certainly never reached a server."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


class Servers:
    """The servers of one client and the one it uses now (the last that answered)."""

    __slots__ = ("current", "urls")

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.current = 0

    def __len__(self) -> int:
        return len(self.urls)

    def order(self) -> list[int]:
        """Indexes to try, the current server first, then the others in turn."""
        n = len(self.urls)
        return [(self.current + i) % n for i in range(n)]

    def answered(self, index: int) -> None:
        """Server ``index`` answered: later calls go to it first."""
        if index != self.current:
            log.info("flux client: using %s", self.urls[index])
            self.current = index

    def unreachable(self, exc: httpx.TransportError, tried: list[int]) -> ApiError:
        """The error of a call that reached none of ``tried`` (status 0, retryable)."""
        where = ", ".join(self.urls[i] for i in tried)
        servers = "server" if len(tried) == 1 else "servers"
        return ApiError(
            f"cannot reach the Flux {servers} at {where}: {exc or type(exc).__name__}; "
            "check that it runs and the URL is right",
            0,
            unreachable=True,
        )

    def moving_on(self, index: int, why: str) -> None:
        log.info("flux client: %s %s; trying the next server", self.urls[index], why)
