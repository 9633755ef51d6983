"""Subworkflows with real processes: a parent's worker killed while its child runs.

The parent calls ``child`` through the server with an execution id derived from its own id and
the call's identity. When the parent's worker dies before the call is recorded (its
``TASK_STARTED`` is still in the worker's memory), the parent replays elsewhere, derives the
same id and waits for that same child, also across the server's sync-wait timeout (1 s here),
whether the child is still running, has finished, runs next to it, or was on the dead worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flux.client import FluxClient
from flux.domain import ExecutionState
from flux.protocol import ExecutionStatus

from tests.support.cluster import FluxCluster, running_cluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

WORKFLOWS = """
import asyncio
import os
from pathlib import Path

from flux import ExecutionContext, task, workflow
from flux.tasks import call, pause

MARKS = Path(os.environ["FLUX_TEST_MARKS"])


def mark(name: str, text: str) -> None:
    with open(MARKS / name, "a") as f:
        f.write(text + "\\n")


@task
async def held(execution_id: str) -> str:
    mark("child-runs", execution_id)
    while not (MARKS / "release").exists():  # the test lets it go
        await asyncio.sleep(0.05)
    return f"ran in {execution_id}"


@workflow
async def child(ctx: ExecutionContext[str]):
    return {"input": ctx.input, "ran": await held(ctx.execution_id)}


@workflow
async def parent(ctx: ExecutionContext[str]):
    return {"called": await call("child", ctx.input)}


@task
async def asked(execution_id: str) -> None:
    mark("asks-runs", execution_id)


@workflow
async def asks(ctx: ExecutionContext[str]):
    await asked(ctx.execution_id)
    return {"input": ctx.input, "answer": await pause("answer")}


@workflow
async def asks_parent(ctx: ExecutionContext[str]):
    return {"called": await call("asks", ctx.input)}
"""

WAITING_AGAIN = "waiting again"
"""What a worker logs when a child is still running after the server's sync wait."""


@contextlib.contextmanager
def _cluster(tmp_path: Path, marks: Path) -> Iterator[tuple[FluxCluster, FluxClient]]:
    """A server whose sync waits last 1 s, with :data:`WORKFLOWS` registered; no workers."""
    with (
        running_cluster(
            tmp_path,
            WORKFLOWS,
            workers=(),
            FLUX_TEST_MARKS=str(marks),
            FLUX_SERVER__SYNC_TIMEOUT="1",
        ) as c,
        FluxClient(c.url) as client,
    ):
        yield c, client


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    path = tmp_path / "marks"
    path.mkdir()
    return path


def _lines(marks: Path, name: str) -> list[str]:
    path = marks / name
    return path.read_text().splitlines() if path.exists() else []


def _executions(c: FluxCluster, workflow: str) -> list[tuple[str, str]]:
    """(id, state) of every execution of ``workflow``, read from the server's database."""
    with contextlib.closing(sqlite3.connect(f"file:{c.home / 'flux.db'}?mode=ro", uri=True)) as db:
        query = "SELECT id, state FROM executions WHERE workflow_name = ?"
        return [(str(i), str(s)) for i, s in db.execute(query, (workflow,))]


def _state_is(client: FluxClient, name: str, execution_id: str, *states: ExecutionState):
    status = client.status(name, execution_id)
    return status if status.state in states else None


def _finished(
    client: FluxClient, name: str, execution_id: str, guard: Callable[[], None] = lambda: None
) -> ExecutionStatus:
    """Its status once finished; ``guard`` runs at every look (it fails the wait early)."""
    finished = (ExecutionState.COMPLETED, ExecutionState.FAILED, ExecutionState.CANCELLED)

    def look() -> ExecutionStatus | None:
        guard()
        return _state_is(client, name, execution_id, *finished)

    return wait_until(look, timeout=60, what=f"{name} {execution_id} to finish")


def _no_other_child(c: FluxCluster, marks: Path, child_id: str) -> Callable[[], None]:
    """A guard that fails as soon as a child other than ``child_id`` exists or has run."""

    def check() -> None:
        others = [i for i in _lines(marks, "child-runs") if i != child_id]
        assert not others, f"a second child ran: {others} besides {child_id}"
        created = [i for i, _ in _executions(c, "child") if i != child_id]
        assert not created, f"a second child was created: {created} besides {child_id}"

    return check


def _kill(c: FluxCluster, name: str) -> None:
    os.kill(c.workers[name].pid, signal.SIGKILL)
    c.workers[name].wait(10)


def _call_not_recorded(client: FluxClient, parent_id: str) -> None:
    """The parent's history on the server has no trace of the call yet: a replay derives the
    child's id again rather than reading it back."""
    detail = client.status("parent", parent_id, detailed=True)
    assert [e.name for e in detail.events or [] if e.name == "call:child"] == []


def _waited_again(c: FluxCluster, worker: str, child_id: str) -> bool:
    log = (c.home / f"worker-{worker}.log").read_text(errors="replace")
    return any(WAITING_AGAIN in line and child_id in line for line in log.splitlines())


def _wait_past_a_sync_wait(c: FluxCluster, child_id: str, only: Callable[[], None]) -> None:
    """Until the parent, replayed on w2, has waited for ``child_id`` past a sync wait."""
    wait_until(
        lambda: only() or _waited_again(c, "w2", child_id),
        timeout=30,
        what="the parent, replayed on w2, to wait for its child past a sync wait",
    )


def _the_one_child(c: FluxCluster, client: FluxClient, parent: ExecutionStatus) -> str:
    """The parent completed with the output of its one child execution; that child's id."""
    assert parent.state == ExecutionState.COMPLETED, (parent, c.tail())
    ((child_id, state),) = _executions(c, "child")
    assert state == "COMPLETED"
    assert parent.output == {"called": {"input": "in", "ran": f"ran in {child_id}"}}
    return child_id


def test_child_still_running_when_the_parent_replays_is_waited_for_not_run_again(
    tmp_path: Path, marks: Path
) -> None:
    """The parent on w1 (one slot), its child on w2. w1 dies before the parent recorded the
    call; the parent replays on w2 next to its child, waits for it across several sync waits
    and completes with its output. The child's task ran once."""
    with _cluster(tmp_path, marks) as (c, client):
        c.start_worker("w1", "--capacity", "1")
        started = client.run("parent", "in", mode="async")
        wait_until(
            lambda: _state_is(client, "parent", started.execution_id, ExecutionState.RUNNING),
            what="the parent to run on w1",
        )
        c.start_worker("w2", "--capacity", "4")  # w1's one slot is the parent's
        (child_id,) = wait_until(lambda: _lines(marks, "child-runs"), what="the child's task")
        only = _no_other_child(c, marks, child_id)
        assert client.status("child", child_id).worker == "w2"
        _call_not_recorded(client, started.execution_id)
        _kill(c, "w1")
        _wait_past_a_sync_wait(c, child_id, only)
        (marks / "release").touch()
        done = _finished(client, "parent", started.execution_id, only)
        assert _the_one_child(c, client, done) == child_id
        assert _lines(marks, "child-runs") == [child_id]


def test_child_finished_before_the_parent_replays_gives_its_output(
    tmp_path: Path, marks: Path
) -> None:
    """As above, but w2 has one slot: the parent can replay there only once the child has
    finished, and gets the child's recorded output without running anything again."""
    with _cluster(tmp_path, marks) as (c, client):
        c.start_worker("w1", "--capacity", "1")
        started = client.run("parent", "in", mode="async")
        wait_until(
            lambda: _state_is(client, "parent", started.execution_id, ExecutionState.RUNNING),
            what="the parent to run on w1",
        )
        c.start_worker("w2", "--capacity", "1")
        (child_id,) = wait_until(lambda: _lines(marks, "child-runs"), what="the child's task")
        only = _no_other_child(c, marks, child_id)
        _call_not_recorded(client, started.execution_id)
        _kill(c, "w1")
        (marks / "release").touch()
        _finished(client, "child", child_id, only)
        done = _finished(client, "parent", started.execution_id, only)
        assert _the_one_child(c, client, done) == child_id
        assert _lines(marks, "child-runs") == [child_id]
        assert not _waited_again(c, "w2", child_id)


def test_child_on_the_dying_worker_replays_once_and_the_parent_waits_for_it(
    tmp_path: Path, marks: Path
) -> None:
    """Parent and child both on w1, which dies mid-child: on w2 the child replays (its
    interrupted task runs again, in the same execution) and the replayed parent waits for it:
    still one child execution."""
    with _cluster(tmp_path, marks) as (c, client):
        c.start_worker("w1", "--capacity", "2")
        started = client.run("parent", "in", mode="async")
        (child_id,) = wait_until(lambda: _lines(marks, "child-runs"), what="the child's task")
        only = _no_other_child(c, marks, child_id)
        assert client.status("child", child_id).worker == "w1"
        _call_not_recorded(client, started.execution_id)
        _kill(c, "w1")
        c.start_worker("w2", "--capacity", "4")
        wait_until(
            lambda: only() or _lines(marks, "child-runs") == [child_id, child_id],
            timeout=30,
            what="the child's task to run again on w2",
        )
        _wait_past_a_sync_wait(c, child_id, only)
        (marks / "release").touch()
        done = _finished(client, "parent", started.execution_id, only)
        assert _the_one_child(c, client, done) == child_id


def test_paused_child_pauses_its_parent_and_a_replay_starts_no_other(
    tmp_path: Path, marks: Path
) -> None:
    """A child that pauses pauses its parent. Resuming the parent answers the child's pause
    (as a local run does) and the parent gets the child's output; resuming the child instead
    lets the parent go on by itself once the child is done. Each child runs once."""
    with _cluster(tmp_path, marks) as (c, client):
        c.start_worker("w1")

        def paused_with_its_child() -> tuple[str, str]:
            parent_id = client.run("asks_parent", "in", mode="async").execution_id

            def paused() -> bool:
                detail = client.status("asks_parent", parent_id, detailed=True)
                return [e.type for e in detail.events or []].count("WORKFLOW_PAUSED") == 1

            wait_until(paused, what="the parent to pause with its child")
            detail = client.status("asks_parent", parent_id, detailed=True)
            (call,) = [e for e in detail.events or [] if e.name == "call:asks"]
            child_id = call.view["execution_id"]
            assert call.type == "TASK_STARTED"
            assert client.status("asks", child_id).state == ExecutionState.PAUSED
            assert client.status("asks_parent", parent_id).pauses == []  # none of its own
            return parent_id, child_id

        # The parent resumed: the answer is the child's.
        parent_id, child_id = paused_with_its_child()
        client.resume("asks_parent", parent_id, "for the parent", mode="async")
        done = _finished(client, "asks_parent", parent_id)
        assert done.output == {"called": {"input": "in", "answer": "for the parent"}}, c.tail()
        assert client.status("asks", child_id).state == ExecutionState.COMPLETED

        # The child resumed: the parent goes on by itself (the server resumes it).
        other_parent, other_child = paused_with_its_child()
        client.resume("asks", other_child, "yes", mode="async")
        done = _finished(client, "asks_parent", other_parent)  # no resume of the parent
        assert done.output == {"called": {"input": "in", "answer": "yes"}}, c.tail()
        detail = client.status("asks_parent", other_parent, detailed=True)
        assert [e.type for e in detail.events or []].count("WORKFLOW_RESUMED") == 1

        assert sorted(_lines(marks, "asks-runs")) == sorted([child_id, other_child])
        assert sorted(_executions(c, "asks")) == sorted(
            [(child_id, "COMPLETED"), (other_child, "COMPLETED")]
        )
