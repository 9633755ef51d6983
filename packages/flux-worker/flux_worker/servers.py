"""The servers a worker may work through (replicas of one database) and the one it uses now.

A worker holds one session, stored in the database every replica shares, so moving to another
server keeps it: the worker opens its stream there and sends what it has in flight there
(checkpoints are idempotent by event id, and the claims it holds keep their generation). It
moves when its server stops answering or says it is going away; it backs off only once every
server has failed since one last answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from flux.errors import ApiError

if TYPE_CHECKING:
    from flux.client import AsyncFluxClient

__all__ = ["ServerList", "server_gone"]

log = logging.getLogger("flux.worker")

# Unreachable (0), or a gateway or server that says it cannot serve now (a replica draining).
_GONE = frozenset({0, 502, 503, 504})


def server_gone(exc: BaseException) -> bool:
    """Whether ``exc`` says the server cannot be worked through now (another one may)."""
    return isinstance(exc, OSError) or (isinstance(exc, ApiError) and exc.status_code in _GONE)


class ServerList:
    """The worker's servers in order of preference, a client for each (made on first use), and
    the one it works through now.

    Args:
        urls: the servers, in order of preference.
        make_client: a client for one URL.
    """

    def __init__(self, urls: Sequence[str], make_client: Callable[[str], AsyncFluxClient]) -> None:
        if not urls:
            raise ValueError("a worker needs at least one server URL")
        self.urls = list(urls)
        self.index = 0
        self._make_client = make_client
        self._clients: dict[int, AsyncFluxClient] = {}
        self._failed: set[int] = set()
        """Servers that failed since one last answered."""

    def __len__(self) -> int:
        return len(self.urls)

    @property
    def url(self) -> str:
        """The server the worker works through now."""
        return self.urls[self.index]

    @property
    def client(self) -> AsyncFluxClient:
        """The client of :attr:`url`."""
        found = self._clients.get(self.index)
        if found is None:
            found = self._clients[self.index] = self._make_client(self.url)
        return found

    def answered(self) -> None:
        """The current server answered: every server is worth trying again."""
        self._failed.clear()

    def failed(self) -> bool:
        """The current server failed: move to the next. Whether that one is still untried
        since a server last answered (``False``: every one failed, back off first)."""
        self._failed.add(self.index)
        self.index = (self.index + 1) % len(self.urls)
        if self.index in self._failed:
            self._failed.clear()  # a new round
            return False
        return True

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
