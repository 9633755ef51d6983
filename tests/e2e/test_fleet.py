"""A fleet that survives losing a server replica: two servers on one PostgreSQL database, two
workers and a client that each know both, a bounded load of sync runs and a schedule firing
every second. One replica is killed with SIGKILL in the middle; every execution still
completes exactly once (one execution per client request, each task run once, by its side
effects and by its events), and the schedule goes on firing each tick once. A second test
drains a replica with SIGTERM instead."""

from __future__ import annotations

import collections
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flux.client import FluxClient
from flux.domain import EventType, ExecutionState
from flux.protocol import ExecutionStatus
from flux.schedules import interval

from tests.support.cluster import FluxCluster, make_cluster, stop_process
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

WORKFLOWS = """
import asyncio
import os

from flux import ExecutionContext, task, workflow

STEPS = os.path.join(os.environ["FLUX_TEST_MARKS"], "steps")


@task
async def step(execution_id: str, n: int) -> int:
    # A side effect per task run, appended whole (O_APPEND): one line per run, whoever ran it.
    with open(STEPS, "a") as f:
        f.write(f"{execution_id}:{n}\\n")
    await asyncio.sleep(0.02)  # some work in flight whenever the replica dies
    return n


@workflow
async def fleet_flow(ctx: ExecutionContext[int]) -> int:
    total = 0
    for n in range(3):
        total += await step(ctx.execution_id, n)
    return total


@workflow
async def ticker(ctx: ExecutionContext[None]) -> int:
    return await step(ctx.execution_id, 0)
"""

TOKEN = "bootstrap-token-of-the-fleet-0123456789"
KEY = "secrets-key-material-of-the-fleet-0123456789"
CLIENTS = 3
"""Threads each running sync runs one after another."""
BEFORE = 15
AFTER = 15
"""Runs completed before the kill, and after it."""


class Load:
    """``CLIENTS`` threads running ``fleet_flow`` in sync mode through one client of both
    servers, until stopped; every answer kept, with when it came."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.done: list[tuple[float, ExecutionStatus]] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(CLIENTS)]

    def _run(self, i: int) -> None:
        with FluxClient(self.urls, timeout=30) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                try:
                    status = client.run("fleet_flow", i * 10_000 + n, mode="sync")
                except BaseException as exc:
                    with self._lock:
                        self.errors.append(exc)
                    return
                with self._lock:
                    self.done.append((time.monotonic(), status))

    def count(self) -> int:
        with self._lock:
            if self.errors:
                raise self.errors[0]
            return len(self.done)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def _fleet(tmp_path: Path, pg_url: str) -> tuple[FluxCluster, FluxCluster]:
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {
        "FLUX_SECURITY__ENCRYPTION_KEY": KEY,
        "FLUX_TEST_MARKS": str(marks),
        "FLUX_SCHEDULING__POLL_INTERVAL": "1",
        # A worker moving to the other replica must not be declared dead meanwhile, and a
        # claim pushed by the dying replica that never arrived goes back to the queue soon.
        "FLUX_SERVER__HEARTBEAT_TIMEOUT": "10",
        "FLUX_SERVER__CLAIM_TIMEOUT": "3",
    }
    # Replica a is configured with the bootstrap token; b has none and takes the one the
    # database recorded, so workers registered anywhere are accepted everywhere.
    a = make_cluster(tmp_path / "a", pg_url, FLUX_WORKERS__BOOTSTRAP_TOKEN=TOKEN, **env)
    b = make_cluster(tmp_path / "b", pg_url, **env)
    return a, b


def _steps(tmp_path: Path) -> collections.Counter[str]:
    lines = (tmp_path / "marks" / "steps").read_text().splitlines()
    return collections.Counter(lines)


def _check_exactly_once(client: FluxClient, tmp_path: Path, load: Load) -> None:
    """Every answer COMPLETED; one execution per request; each task ran once."""
    ids = {status.execution_id for _, status in load.done}
    assert len(ids) == len(load.done)
    for _, status in load.done:
        assert (status.state, status.output) == (ExecutionState.COMPLETED, 3), status
    listed = client.list_executions(workflow="fleet_flow", limit=500)
    assert listed.next_cursor is None
    # Runs stopped mid-way by the end of the load may have started more than were answered.
    extra = {e.execution_id for e in listed.items} - ids
    assert len(extra) <= CLIENTS
    steps = _steps(tmp_path)
    twice = {line: n for line, n in steps.items() if n > 1}
    assert twice == {}, f"tasks ran more than once: {twice}"
    for execution_id in ids:
        assert all(steps[f"{execution_id}:{n}"] == 1 for n in range(3)), execution_id
        events = client.get_execution(execution_id, detailed=True).events or []
        started = collections.Counter(
            e.source_id for e in events if e.type == EventType.TASK_STARTED
        )
        assert sorted(started.values()) == [1, 1, 1], (execution_id, started)


def test_killing_a_replica_loses_and_repeats_nothing(tmp_path: Path, pg_url: str) -> None:
    a, b = _fleet(tmp_path, pg_url)
    try:
        a.start_server()
        b.start_server()
        # w1 prefers a, w2 prefers b; both know both.
        a.start_worker("w1", "--server-url", b.url)
        b.start_worker("w2", "--server-url", a.url, "--token", TOKEN)
        source = tmp_path / "workflows.py"
        source.write_text(WORKFLOWS)
        urls = [a.url, b.url]
        with FluxClient(urls) as client:
            client.register_workflows(source)
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
            client.create_schedule("ticker", "every-second", interval(seconds=1, start_at=start))
            with Load(urls) as load:
                wait_until(lambda: load.count() >= BEFORE, what=f"{BEFORE} runs", timeout=60)
                assert a.server is not None
                a.server.send_signal(signal.SIGKILL)
                a.server.wait(10)
                killed_at = datetime.now(UTC)
                killed = load.count()
                wait_until(
                    lambda: load.count() >= killed + AFTER, what=f"{AFTER} more runs", timeout=60
                )

            def ticks_after_kill() -> int:
                runs = client.schedule_history("every-second", limit=1000)
                return sum(1 for r in runs if r.fired_at > killed_at and r.execution_id)

            wait_until(lambda: ticks_after_kill() >= 2, what="2 ticks after the kill")
            client.pause_schedule("every-second")
            runs = client.schedule_history("every-second", limit=1000)
            fired = [r for r in runs if r.execution_id]

            def all_finished() -> bool:
                counts = client.list_executions(limit=1).counts
                return set(counts) <= {ExecutionState.COMPLETED}

            wait_until(all_finished, what="every execution to finish")
            assert client.base_url == b.url  # the client moved, and stayed
            _check_exactly_once(client, tmp_path, load)

            due = [r.scheduled_for for r in runs]
            assert len(due) == len(set(due)), "a tick fired twice"
            tickers = client.list_executions(workflow="ticker", limit=500).items
            assert {e.execution_id for e in tickers} == {r.execution_id for r in fired}
            steps = _steps(tmp_path)
            assert all(steps[f"{r.execution_id}:0"] == 1 for r in fired)
        assert "moving to " + b.url in (a.home / "worker-w1.log").read_text()
    except BaseException:
        print(a.tail(), b.tail())
        raise
    finally:
        for cluster in (a, b):
            cluster.stop()


def test_a_draining_replica_hands_its_workers_and_clients_over(tmp_path: Path, pg_url: str) -> None:
    a, b = _fleet(tmp_path, pg_url)
    try:
        a.start_server()
        b.start_server()
        a.start_worker("w1", "--server-url", b.url)
        source = tmp_path / "workflows.py"
        source.write_text(WORKFLOWS)
        urls = [a.url, b.url]
        with FluxClient(urls) as client:
            client.register_workflows(source)
            with Load(urls) as load:
                wait_until(lambda: load.count() >= BEFORE, what=f"{BEFORE} runs", timeout=60)
                assert a.server is not None
                began = time.monotonic()
                code = stop_process(a.server, signal.SIGTERM, grace=30)
                drained = time.monotonic() - began
                stopped = load.count()
                wait_until(
                    lambda: load.count() >= stopped + AFTER, what=f"{AFTER} more runs", timeout=60
                )
            wait_until(
                lambda: set(client.list_executions(limit=1).counts) <= {"COMPLETED"},
                what="every execution to finish",
            )
            _check_exactly_once(client, tmp_path, load)
        assert code in (0, -signal.SIGTERM)  # it exited on its own, not killed
        log = (a.home / "server.log").read_text()
        assert "draining: no more work is handed out here" in log
        assert "moving to " + b.url in (a.home / "worker-w1.log").read_text()
        print(f"replica drained and exited in {drained:.2f}s")
    except BaseException:
        print(a.tail(), b.tail())
        raise
    finally:
        for cluster in (a, b):
            cluster.stop()
