"""The keepalive: while the event loop is stalled it heartbeats in the loop's place (once per
heartbeat interval, up to ``max_stall``), and while the loop runs it sends nothing.

The heartbeats go to a real server process (the loop this test blocks cannot serve an
in-process one), over the keepalive's own blocking client; the server's record of the
worker's last heartbeat shows they arrived.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Iterator
from datetime import datetime

import pytest
from flux.client import FluxClient
from flux.protocol import RegisterWorkerRequest
from flux_worker.keepalive import BlockingHeartbeat, Keepalive

from tests.support.cluster import FluxCluster, make_cluster
from tests.support.waiting import wait_until, wait_until_async

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FluxCluster]:
    """A real server process; workers registered by the tests send no heartbeat of their own,
    so the server is told to wait a minute before it declares one dead."""
    c = make_cluster(tmp_path_factory.mktemp("keepalive"), FLUX_SERVER__HEARTBEAT_TIMEOUT="60")
    try:
        c.start_server()
        yield c
    finally:
        c.stop()


class Registered:
    """A worker registered with the cluster's server, and what the server says of it."""

    def __init__(self, cluster: FluxCluster) -> None:
        self.url = cluster.url
        self.name = f"ka-{secrets.token_hex(3)}"
        token = (cluster.home / "bootstrap-token").read_text().strip()
        with FluxClient(self.url) as client:
            session = client.register_worker(
                RegisterWorkerRequest(name=self.name, capacity=1), bootstrap_token=token
            )
        self.session_token = session.session_token

    def heartbeat(self) -> BlockingHeartbeat:
        return BlockingHeartbeat(lambda: self.url, self.name, lambda: self.session_token)

    def last_heartbeat(self) -> datetime:
        with FluxClient(self.url) as client:
            (info,) = [w for w in client.list_workers() if w.name == self.name]
        assert info.last_heartbeat is not None
        return info.last_heartbeat


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_it_beats_once_per_interval_while_the_loop_is_stalled_and_stops(
    cluster: FluxCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Driven look by look with a clock of its own: the loop runs (no beat however long),
    stalls (a beat per interval), stalls past ``max_stall`` (it gives up), runs again."""
    caplog.set_level(logging.WARNING, logger="flux.worker")
    worker = Registered(cluster)
    registered = worker.last_heartbeat()
    clock = Clock()
    keepalive = Keepalive(
        asyncio.get_running_loop(),
        worker.heartbeat(),
        name=worker.name,
        interval=lambda: 1.0,
        max_stall=10.0,
        clock=clock,
    )
    try:
        # The loop runs: each look finds the last ping answered.
        for _ in range(3):
            assert not keepalive.check()
            await asyncio.sleep(0)  # the loop answers the ping
            clock.now += 5.0
        # The loop is stalled from here on (no await until it runs again).
        assert not keepalive.check()  # the ping the loop will not answer
        clock.now += 0.5
        assert not keepalive.check()  # not stalled for an interval yet
        clock.now += 0.6
        assert keepalive.check()
        clock.now += 0.5
        assert not keepalive.check()  # beat less than an interval ago
        clock.now += 0.6
        assert keepalive.check()
        assert keepalive.beats == 2
        clock.now += 10.0
        assert not keepalive.check()  # over max_stall: treated as hung
        clock.now += 1.0
        assert not keepalive.check()
        await asyncio.sleep(0)  # the loop runs again, and answers
        for _ in range(3):
            clock.now += 5.0
            assert not keepalive.check()
            await asyncio.sleep(0)
    finally:
        keepalive.stop()
    assert keepalive.beats == 2
    assert worker.last_heartbeat() > registered
    messages = [r.getMessage() for r in caplog.records if r.name == "flux.worker"]
    assert [m.split(": ", 1)[1].split(" for ")[0] for m in messages] == [
        "event loop blocked",
        "event loop blocked",
        "event loop running again",
    ]
    assert "over max_loop_stall" in messages[1]


async def test_its_thread_beats_while_task_code_blocks_the_loop(cluster: FluxCluster) -> None:
    """The thread itself, on the real clock: blocking the loop (as ``time.sleep`` in a task
    would) brings heartbeats; once the loop runs, the thread looks again and again without
    beating."""
    worker = Registered(cluster)
    registered = worker.last_heartbeat()
    looks = 0
    lock = threading.Lock()

    def interval() -> float:
        nonlocal looks
        with lock:
            looks += 1
        return 0.2

    keepalive = Keepalive(
        asyncio.get_running_loop(),
        worker.heartbeat(),
        name=worker.name,
        interval=interval,
        max_stall=60.0,
    )
    keepalive.start()
    try:
        # A blocking wait, in the loop's own thread: the stall under test.
        wait_until(lambda: keepalive.beats >= 2, what="two beats", timeout=20, interval=0.01)
        assert worker.last_heartbeat() > registered

        # The loop runs again. A look that began during the stall may still beat: two whole
        # looks later (each asks for the interval twice) none is left.
        async def looked(more: int) -> None:
            with lock:
                seen = looks
            await wait_until_async(
                lambda: looks >= seen + more, what=f"{more} looks", timeout=20, interval=0.01
            )

        await looked(4)
        beats = keepalive.beats
        await looked(20)  # ten looks or so, over several heartbeat intervals
        assert keepalive.beats == beats
    finally:
        keepalive.stop()
    assert not keepalive.is_alive()


def test_the_blocking_heartbeat_sends_nothing_without_a_session() -> None:
    beat = BlockingHeartbeat(lambda: "http://127.0.0.1:9", "w", lambda: None)
    beat()  # no token, no request (the port would refuse it)
    beat.close()
