"""Heartbeats from a thread while task code blocks the worker's event loop.

The event loop's heartbeat task does the real work (resources, fenced and cancelled
executions). Task code that blocks the loop (``import torch``, a long synchronous call) stops
that task too, and a server that hears nothing declares the worker dead and runs its
executions a second time elsewhere. So a :class:`Keepalive` thread pings the loop
(``call_soon_threadsafe``) about once a second; when a ping has gone unanswered for a
heartbeat interval, it sends bare heartbeats over a blocking connection of its own
(:class:`BlockingHeartbeat`). After ``max_stall`` seconds of stall it stops: a loop stuck that
long is treated as hung, and the server requeues its work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flux.client import FluxClient

__all__ = ["BlockingHeartbeat", "Keepalive"]

log = logging.getLogger("flux.worker")


class BlockingHeartbeat:
    """A bare heartbeat of worker ``name`` over a blocking client of its own (the worker's
    client belongs to the stalled loop), to the server the worker works through now. Does
    nothing while there is no session token."""

    def __init__(
        self, server_url: Callable[[], str], name: str, token: Callable[[], str | None]
    ) -> None:
        self.server_url = server_url
        self.name = name
        self._token = token
        self._client: FluxClient | None = None

    def __call__(self) -> None:
        """Raises whatever the call raises (the keepalive logs it and goes on)."""
        token = self._token()
        if token is None:
            return
        url = self.server_url()
        if self._client is not None and self._client.server_urls != [url]:
            self.close()  # the worker moved to another server
            self._client = None
        if self._client is None:
            from flux.client import FluxClient

            self._client = FluxClient(url, timeout=5.0)
        self._client.worker(self.name, token).heartbeat()

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()


class Keepalive(threading.Thread):
    """Watches ``loop`` and calls ``beat`` once per heartbeat interval while it is stalled.

    Args:
        loop: the worker's event loop.
        beat: sends one heartbeat (any exception it raises is logged at DEBUG).
        name: the worker's name, for the thread and the log.
        interval: the heartbeat interval now (the server may change it).
        max_stall: seconds of stall after which it stops beating.
        clock: monotonic seconds (tests drive :meth:`check` with their own).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        beat: Callable[[], None],
        *,
        name: str,
        interval: Callable[[], float],
        max_stall: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name=f"flux-keepalive-{name}", daemon=True)
        self.loop = loop
        self.beat = beat
        self.worker_name = name
        self.interval = interval
        self.max_stall = max_stall
        self.clock = clock
        self.beats = 0
        """Heartbeats sent in the loop's place (failed ones not counted)."""
        self._halt = threading.Event()
        self._last_beat: float | None = None
        self._pinged: float | None = None
        """When the unanswered ping was sent; ``None`` once the loop has run it."""
        self._warned = False
        self._gave_up = False

    def stop(self) -> None:
        """Stop watching (joins the thread when it was started) and close ``beat``."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout=5)
        close = getattr(self.beat, "close", None)
        if close is not None:
            close()

    def run(self) -> None:
        while not self._halt.wait(min(1.0, self.interval() / 2)):
            self.check()

    def check(self) -> bool:
        """One look at the loop: ping it when it answered the last ping, else beat when that
        ping has waited a heartbeat interval (up to ``max_stall``). Whether it tried to beat."""
        interval = self.interval()
        stalled = self._stalled()
        if stalled < interval:
            if self._warned:
                log.warning("worker %s: event loop running again", self.worker_name)
            self._warned = self._gave_up = False
            return False
        if stalled > self.max_stall:
            if not self._gave_up:
                log.error(
                    "worker %s: event loop blocked for %.0fs, over max_loop_stall; no more "
                    "heartbeats until it runs again (the server will requeue its work)",
                    self.worker_name,
                    stalled,
                )
            self._gave_up = True
            return False
        if not self._warned:
            log.warning(
                "worker %s: event loop blocked for %.1fs by task code; heartbeating from a "
                "thread meanwhile (run blocking work with asyncio.to_thread)",
                self.worker_name,
                stalled,
            )
            self._warned = True
        now = self.clock()
        if self._last_beat is not None and now - self._last_beat < interval:
            return False
        self._last_beat = now
        try:
            self.beat()
        except Exception as exc:  # the loop's own heartbeat reports and recovers from errors
            log.debug("keepalive heartbeat failed: %s", exc)
        else:
            self.beats += 1
        return True

    def _answer(self) -> None:  # runs on the event loop
        self._pinged = None

    def _stalled(self) -> float:
        """Seconds the loop has left a ping unanswered (0 when it answered the last one, which
        sends the next)."""
        pinged = self._pinged
        if pinged is not None:
            return self.clock() - pinged
        self._pinged = self.clock()
        try:
            self.loop.call_soon_threadsafe(self._answer)
        except RuntimeError:  # the loop is closed: the worker is shutting down
            self._halt.set()
        return 0.0
