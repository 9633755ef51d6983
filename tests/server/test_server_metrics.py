"""``GET /metrics`` (in-process server, fake workers made of the real client, SQLite and
PostgreSQL): each lifecycle counter moves by exactly what happened, once, however the
change came (fast path or route, pushed or pulled claim, cancel, release, expiry, a repeated
checkpoint); the gauges read the database; the exposition parses as a scraper reads it."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flux.config import SchedulingSettings
from flux.domain import EventType, ExecutionState, utcnow
from flux.protocol import OutputRecord
from flux.schedules import cron, interval, once
from flux_server import metrics
from flux_server.db.tables import schedules
from flux_server.metrics import METRICS
from flux_worker.metrics import METRICS as WORKER_METRICS
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from server_support import FakeWorker, Server, record

from tests.support.prometheus import Scrape, delta, parse
from tests.support.waiting import wait_until_async

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
STARTED = "flux_executions_started_total"
FINISHED = "flux_executions_finished_total"
DURATION = "flux_execution_duration_seconds_count"
DISPATCH = "flux_dispatch_latency_seconds_count"
FIRES = "flux_schedule_fires_total"


async def scrape(server: Server) -> Scrape:
    response = await server.http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def set_due(server: Server, name: str, due: datetime, **values: Any) -> None:
    """Move a schedule's next tick (what time passing does), changing ``values`` too."""
    async with server.runtime.db.write() as tx:
        await tx.conn.execute(
            sa.update(schedules).where(schedules.c.name == name).values(next_run_at=due, **values)
        )


async def fail(worker: FakeWorker, execution_id: str, generation: int) -> None:
    await worker.checkpoint(
        execution_id,
        generation,
        [
            record(EventType.WORKFLOW_STARTED),
            record(EventType.WORKFLOW_FAILED, "boom"),
        ],
        OutputRecord.from_value("boom", "json"),
    )


async def test_each_lifecycle_change_counts_once(server: Server) -> None:
    """Four executions: one completes (claimed twice by its holder, its last checkpoint sent
    twice), one fails, one is cancelled in the queue, one is cancelled while held and ends
    when its worker lets go. A start repeated with the same id is the same execution."""
    await server.register()
    worker = await server.worker()  # takes offers: the test claims by id
    before = await scrape(server)
    client = server.client
    a = await client.run("hello", "a", execution_id="metrics-a")
    assert (await client.run("hello", "a", execution_id="metrics-a")).execution_id == "metrics-a"
    b, c, d = [await client.run("hello", x) for x in "bcd"]

    await worker.claim(a.execution_id)
    claim_a = await worker.claim(a.execution_id)  # again, its answer lost: the same claim
    await worker.finish(claim_a, "done")
    await worker.finish(claim_a, "done")  # sent again: merged, nothing new
    claim_b = await worker.claim(b.execution_id)
    await fail(worker, b.execution_id, claim_b.generation)
    await client.cancel("hello", c.execution_id)
    claim_d = await worker.claim(d.execution_id)
    assert (await client.cancel("hello", d.execution_id)).state == ExecutionState.CANCELLING
    await worker.ch.release(d.execution_id, claim_d.generation, "stopping")
    assert (await client.status("hello", d.execution_id)).state == ExecutionState.CANCELLED

    after = await scrape(server)
    assert delta(after, before, STARTED, workflow="hello") == 4
    for state, n in (("completed", 1), ("failed", 1), ("cancelled", 2)):
        assert delta(after, before, FINISHED, workflow="hello", state=state) == n, state
        assert delta(after, before, DURATION, workflow="hello", state=state) == n, state
    assert delta(after, before, DISPATCH) == 3  # a, b, d: one wait each


async def test_pushed_claims_and_resumes_count_each_wait(server: Server) -> None:
    """A claim pushed by dispatch counts its wait; a resume queues the execution again, and
    its next claim counts that wait too. The duration spans the pause."""
    await server.register()
    worker = await server.worker(push=True)
    before = await scrape(server)
    started = await server.client.run("hello", "p")
    claim = await worker.next_claimed()
    paused = ExecutionState.PAUSED
    await worker.checkpoint(
        claim.execution_id,
        claim.generation,
        [record(EventType.WORKFLOW_STARTED), record(EventType.WORKFLOW_PAUSED, "wait")],
    )
    middle = await scrape(server)
    assert (await server.client.status("hello", started.execution_id)).state == paused
    await server.client.resume("hello", started.execution_id, "go")
    again = await worker.next_claimed()
    await worker.finish(again, "done")

    after = await scrape(server)
    assert delta(middle, before, DISPATCH) == 1
    assert delta(middle, before, FINISHED, workflow="hello", state="completed") == 0
    assert delta(after, before, DISPATCH) == 2
    assert delta(after, before, STARTED, workflow="hello") == 1
    assert delta(after, before, FINISHED, workflow="hello", state="completed") == 1


async def test_a_dead_workers_cancelling_execution_counts_as_cancelled(server: Server) -> None:
    await server.register()
    worker = await server.worker()
    before = await scrape(server)
    execution = await server.client.run("hello", "x")
    await worker.claim(execution.execution_id)
    await server.client.cancel("hello", execution.execution_id)
    assert await server.runtime.workers.expire(utcnow() + timedelta(minutes=1)) == ["w1"]

    after = await scrape(server)
    assert delta(after, before, FINISHED, workflow="hello", state="cancelled") == 1
    assert delta(after, before, DURATION, workflow="hello", state="cancelled") == 1


async def test_the_fast_path_and_the_route_count_alike(server: Server, caplog) -> None:
    """A run the fast path answers and one it leaves to the route (a query string) both
    count: the count is the store's, not a route's."""
    await server.register()
    before = await scrape(server)
    with caplog.at_level(logging.DEBUG, logger="flux.server.fastpath"):
        assert (await server.http.post("/workflows/hello/run/async", json=1)).status_code == 200
        assert not caplog.records
        routed = await server.http.post("/workflows/hello/run/async?via=route", json=2)
        assert routed.status_code == 200
        assert "query string" in caplog.text
    after = await scrape(server)
    assert delta(after, before, STARTED, workflow="hello") == 2


async def test_the_gauges_read_the_database_and_are_cached(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    await server.register()
    worker = await server.worker(capacity=4)
    queued = [await server.client.run("hello", i) for i in range(3)]
    await worker.claim(queued[0].execution_id)

    now = await scrape(server)
    assert now.value("flux_executions", state="scheduled") == 2
    assert now.value("flux_executions", state="claimed") == 1
    assert now.value("flux_executions", state="completed") == 0
    assert now.value("flux_workers_connected") == 1
    assert now.value("flux_worker_slots", state="used") == 1
    assert now.value("flux_worker_slots", state="available") == 3

    await server.client.run("hello", 4)
    monkeypatch.setattr(metrics, "GAUGE_CACHE_SECONDS", 3600.0)
    assert (await scrape(server)).value("flux_executions", state="scheduled") == 2  # cached
    monkeypatch.setattr(metrics, "GAUGE_CACHE_SECONDS", 0.0)
    assert (await scrape(server)).value("flux_executions", state="scheduled") == 3


async def test_schedule_fires_count_by_outcome(start_server) -> None:
    """Fired (an execution starts), skipped (a missed tick with catch_up = "skip"), failed
    (the workflow is gone; the schedule cannot be read)."""
    # A generous tolerance: only "missed" (three days late) is late, however slow the machine
    # (with the default second, a slow scheduler pass found "orphan" late and skipped it).
    server: Server = await start_server(
        scheduling=SchedulingSettings(
            poll_interval=1.0, catch_up="skip", schedule_check_tolerance=600.0
        )
    )
    await server.register()
    before = await scrape(server)
    client = server.client
    await client.create_schedule("hello", "now", once(datetime.now(UTC)))
    for name in ("missed", "orphan", "garbled"):
        await client.create_schedule("hello", name, cron("0 3 * * *"))
    await set_due(server, "missed", datetime.now(UTC) - timedelta(days=3))
    await set_due(server, "orphan", datetime.now(UTC), workflow_name="gone")
    await set_due(server, "garbled", datetime.now(UTC), schedule={"type": "weekly"})
    server.runtime.scheduler.wake()

    async def all_taken() -> bool:
        return all(
            [await client.schedule_history(n) for n in ("now", "missed", "orphan", "garbled")]
        )

    await wait_until_async(all_taken, what="every schedule's tick")
    after = await scrape(server)
    assert delta(after, before, FIRES, outcome="fired") == 1
    assert delta(after, before, FIRES, outcome="skipped") == 1
    assert delta(after, before, FIRES, outcome="failed") == 2
    assert delta(after, before, STARTED, workflow="hello") == 1
    await client.create_schedule("hello", "later", interval(hours=1))  # nothing due: no fire
    assert delta(await scrape(server), after, FIRES, outcome="fired") == 0


async def test_every_metric_is_exposed_with_its_type_and_help(server: Server) -> None:
    await server.register()
    worker = await server.worker()
    execution = await server.client.run("hello", 1)
    await worker.finish(await worker.claim(execution.execution_id), "done")
    families = (await scrape(server)).families
    for info in METRICS:
        assert families[info.base] == (info.kind, info.help), info.name


async def test_openmetrics_when_the_scraper_asks_for_it(server: Server) -> None:
    response = await server.http.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert {info.base for info in METRICS} <= names


async def test_metrics_can_be_turned_off(start_server) -> None:
    server: Server = await start_server(metrics=False)
    await server.register()
    await server.client.run("hello", 1)
    response = await server.http.get("/metrics")
    assert response.status_code == 404
    body: dict[str, Any] = response.json()
    assert body["code"] == "not_found" and "server.metrics" in body["message"]
    assert server.runtime.metrics is None


def test_the_operations_doc_lists_every_metric_with_its_type_and_labels() -> None:
    """Server and worker metrics alike: one row each, as the code defines them."""
    rows = {
        name: (kind, labels)
        for name, kind, labels in re.findall(
            r"^\| `(flux_\w+)` \| (\w+) \| ([^|]+) \|", OPERATIONS.read_text(), flags=re.M
        )
    }
    defined = [(i.name, i.kind, i.labels) for i in METRICS]
    defined += [(name, kind, labels) for name, kind, labels, _ in WORKER_METRICS]
    assert sorted(rows) == sorted(name for name, _, _ in defined)
    for name, kind, labels in defined:
        shown = ", ".join(f"`{label}`" for label in labels) or "—"
        assert rows[name] == (kind, shown), name
