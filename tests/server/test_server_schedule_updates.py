"""``PATCH /schedules/{id}``: a schedule changed in place keeps its id, counters and history;
bad changes change nothing; and an update racing a tick (or a pause) on the same row neither
fires the tick twice nor loses it, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flux.config import SchedulingSettings
from flux.errors import ApiError, NotFoundError, UsageError
from flux.protocol import ScheduleInfo, ScheduleRunState, ScheduleState, UpdateScheduleRequest
from flux.schedules import cron, interval, once
from flux_server.db.tables import schedules
from flux_server.runtime import Runtime
from flux_server.store.schedule_runs import DueTick
from server_support import HELLO, Server

from tests.support.waiting import wait_until_async

LISBON_NIGHTS = cron("30 2 * * *", timezone="Europe/Lisbon")
SCHEDULED = b"""
from flux import workflow, cron

@workflow.with_options(name="daily_report", schedule=cron("0 9 * * MON-FRI", timezone="UTC"))
async def daily_report_workflow(ctx):
    return "report"
"""
QUIET = SchedulingSettings(poll_interval=3600.0)
"""The scheduler sleeps until woken: a tick that fires proves something woke it."""


def between(schedule: Any, before: datetime, after: datetime) -> set[datetime | None]:
    """The next run times ``schedule`` may have got from a 'now' in [before, after]."""
    return {schedule.next_run_after(before), schedule.next_run_after(after)}


async def tick_of(runtime: Runtime, name: str) -> DueTick:
    """The tick a scheduler would read for ``name`` (whether or not it is due yet)."""
    async with runtime.db.read() as conn:
        row = (await conn.execute(sa.select(schedules).where(schedules.c.name == name))).one()
    return DueTick(row.id, row.name, row.workflow_name, row.schedule, row.next_run_at, row.catch_up)


async def fire(runtime: Runtime, tick: DueTick, *, last: bool = False) -> dict[str, Any] | None:
    """Claim and fire ``tick`` as a scheduler (of this or another replica) would; the
    schedule then fires next a day later, or never when it is the ``last`` tick."""
    workflow = await runtime.workflows.latest(tick.workflow_name)
    return await runtime.scheduler.runs.fire(
        tick,
        datetime.now(UTC),
        None if last else tick.next_run_at + timedelta(days=1),
        workflow=workflow,
        error=None,
        skip=None,
        max_concurrent=10,
    )


async def test_update_changes_each_field_in_place_and_keeps_the_history(server) -> None:
    await server.register(HELLO)
    client = server.client
    created = await client.create_schedule(
        "hello", "nightly", LISBON_NIGHTS, description="At night", input={"mode": "full"}
    )
    # A run in its history (the tick is fired by hand: it is not due for hours).
    run = await fire(server.runtime, await tick_of(server.runtime, "nightly"))
    assert run is not None
    fired = await client.get_schedule("nightly")
    assert fired.run_count == 1

    # The description alone: the timing stays.
    described = await client.update_schedule("nightly", description="Every night")
    assert described.description == "Every night"
    assert (described.schedule_config, described.next_run_at) == (
        fired.schedule_config,
        fired.next_run_at,
    )
    assert (described.input, described.run_count, described.id) == ({"mode": "full"}, 1, created.id)
    assert described.updated_at > fired.updated_at
    assert await client.get_schedule(created.id) == described

    # A new expression keeps the zone and runs from now, not from the last run.
    before = datetime.now(UTC)
    moved = await client.update_schedule(
        created.id, {"type": "cron", "cron_expression": "0 10 * * *"}
    )
    after = datetime.now(UTC)
    ten_in_lisbon = cron("0 10 * * *", timezone="Europe/Lisbon")
    assert moved.schedule_config == ten_in_lisbon.to_config()
    assert moved.next_run_at in between(ten_in_lisbon, before, after)
    assert moved.state == ScheduleState.ACTIVE

    # The zone alone.
    before = datetime.now(UTC)
    zoned = await client.update_schedule("nightly", timezone="America/New_York")
    after = datetime.now(UTC)
    ten_in_new_york = cron("0 10 * * *", timezone="America/New_York")
    assert zoned.schedule_config == ten_in_new_york.to_config()
    assert zoned.next_run_at in between(ten_in_new_york, before, after)

    # Another kind of schedule, the catch-up policy, and null clearing input and description.
    before = datetime.now(UTC)
    hourly = await client.update_schedule(
        "nightly", interval(hours=1), input=None, description=None, catch_up="skip"
    )
    after = datetime.now(UTC)
    assert hourly.schedule_config["interval_seconds"] == 3600
    assert hourly.next_run_at == hourly.updated_at + timedelta(hours=1)  # from now
    assert (hourly.input, hourly.description, hourly.catch_up) == (None, None, "skip")
    back = await client.update_schedule("nightly", catch_up=None, input=[1, 2])
    assert (back.catch_up, back.input, back.next_run_at) == (None, [1, 2], hourly.next_run_at)

    # The run is still there, under the same schedule; nothing else moved.
    (kept,) = await client.schedule_history("nightly")
    assert (kept.id, kept.schedule_id, kept.state) == (run["id"], created.id, run["state"])
    assert (back.run_count, back.failure_count, back.skip_count) == (1, 0, 0)
    assert (back.created_at, back.name, back.workflow_name) == (
        created.created_at,
        "nightly",
        "hello",
    )


async def test_the_same_schedule_again_changes_no_timing(server) -> None:
    await server.register(HELLO)
    created = await server.client.create_schedule("hello", "nightly", LISBON_NIGHTS)
    same = await server.client.update_schedule("nightly", LISBON_NIGHTS)
    assert (same.schedule_config, same.next_run_at) == (
        created.schedule_config,
        created.next_run_at,
    )
    also_same = await server.client.update_schedule("nightly", timezone="Europe/Lisbon")
    assert also_same.next_run_at == created.next_run_at


async def test_a_paused_schedule_stays_paused_and_a_completed_one_runs_again(server) -> None:
    await server.register(HELLO)
    client = server.client
    await client.create_schedule("hello", "nightly", LISBON_NIGHTS)
    await client.pause_schedule("nightly")
    updated = await client.update_schedule("nightly", cron("0 4 * * *"))
    assert (updated.state, updated.next_run_at) == (ScheduleState.PAUSED, None)
    before = datetime.now(UTC)
    resumed = await client.resume_schedule("nightly")
    assert resumed.next_run_at in between(cron("0 4 * * *"), before, datetime.now(UTC))

    # A once schedule that ran is completed; a new time makes it active again.
    await client.create_schedule("hello", "launch", once(datetime.now(UTC) + timedelta(days=1)))
    launch = await tick_of(server.runtime, "launch")
    assert await fire(server.runtime, launch, last=True) is not None
    assert (await client.get_schedule("launch")).state == ScheduleState.COMPLETED
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    again = await client.update_schedule("launch", once(later))
    assert (again.state, again.next_run_at) == (ScheduleState.ACTIVE, later)
    assert len(await client.schedule_history("launch")) == 1


async def test_a_once_time_without_offset_is_read_in_the_zone(server) -> None:
    await server.register(HELLO)
    await server.client.create_schedule("hello", "nightly", LISBON_NIGHTS)
    # No timezone given: the schedule's own (Lisbon, UTC+0 in January).
    kept_zone = await server.client.update_schedule(
        "nightly", {"type": "once", "run_at": "2030-01-15T09:00:00"}
    )
    assert kept_zone.next_run_at == datetime(2030, 1, 15, 9, tzinfo=UTC)
    assert kept_zone.schedule_config == {"type": "once", "run_at": "2030-01-15T09:00:00+00:00"}
    tokyo = await server.client.update_schedule(
        "nightly", {"type": "once", "run_at": "2030-01-15T09:00:00"}, timezone="Asia/Tokyo"
    )
    assert tokyo.next_run_at == datetime(2030, 1, 15, 0, tzinfo=UTC)


_PAST_ONCE = {"type": "once", "run_at": "2001-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({}, 400, "nothing to change"),
        ({"color": "red"}, 422, "color"),
        ({"description": "x", "timezone_": "UTC"}, 422, "timezone_"),
        (
            {"schedule_config": {"type": "cron", "cron_expression": "61 * * * *"}},
            400,
            "'61 * * * *'",
        ),
        ({"schedule_config": {"type": "cron", "cron_expression": "0 9 * *"}}, 400, "five fields"),
        ({"timezone": "Mars/Base"}, 400, "unknown timezone 'Mars/Base'"),
        ({"timezone": None}, 400, "timezone cannot be null"),
        ({"schedule_config": None}, 400, "schedule_config cannot be null"),
        ({"schedule_config": "daily"}, 422, "schedule_config"),
        ({"schedule_config": {"type": "weekly"}}, 400, "unknown schedule type 'weekly'"),
        ({"schedule_config": _PAST_ONCE}, 400, "in the past"),
        (
            {"schedule_config": {"type": "cron", "cron_expression": "@daily", "timezone": "UTC"}}
            | {"timezone": "Asia/Tokyo"},
            400,
            "give one",
        ),
        ({"catch_up": "sometimes"}, 422, "catch_up"),
        ({"description": 5}, 422, "description"),
    ],
)
async def test_a_bad_update_is_refused_with_the_reason_and_changes_nothing(
    server, body: dict[str, Any], status: int, reason: str
) -> None:
    await server.register(HELLO)
    created = await server.client.create_schedule(
        "hello", "nightly", LISBON_NIGHTS, description="d", input=1
    )
    answer = await server.http.patch("/schedules/nightly", json=body)
    assert answer.status_code == status, answer.text
    assert reason in answer.json()["message"]
    assert await server.client.get_schedule("nightly") == created


async def test_other_bad_updates(server) -> None:
    await server.register(HELLO)
    launch = await server.client.create_schedule(
        "hello", "launch", once(datetime.now(UTC) + timedelta(days=1))
    )
    with pytest.raises(ApiError, match="no time zone to change") as caught:
        await server.client.update_schedule("launch", timezone="Europe/Lisbon")
    assert caught.value.status_code == 400
    assert await server.client.get_schedule("launch") == launch
    with pytest.raises(NotFoundError, match="no schedule 'nope'"):
        await server.client.update_schedule("nope", description="x")
    with pytest.raises(UsageError, match="nothing to change"):
        await server.client.update_schedule("launch")
    with pytest.raises(TypeError, match="colour"):
        UpdateScheduleRequest(colour="red")  # type: ignore[call-arg]
    not_json = await server.http.patch(
        "/schedules/launch", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400


async def test_an_update_wakes_the_scheduler(start_server) -> None:
    """The scheduler sleeps up to an hour here; the update's note wakes it at once."""
    server: Server = await start_server(scheduling=QUIET)
    await server.register(HELLO)
    await server.client.create_schedule("hello", "later", interval(hours=1), input="now")
    await server.client.update_schedule("later", once(datetime.now(UTC)))

    async def fired() -> Any:
        return await server.client.schedule_history("later")

    (run,) = await wait_until_async(fired, timeout=30)
    assert run.state == ScheduleRunState.STARTED
    assert (await server.client.status("hello", run.execution_id)).input == "now"


@pytest.mark.parametrize(("server_policy", "own"), [("once", "skip"), ("skip", "once")])
async def test_a_schedules_own_catch_up_policy_overrides_the_setting(
    start_server, server_policy: str, own: str
) -> None:
    """A tick missed three days ago (no server ran): the schedule's policy decides."""
    server: Server = await start_server(
        scheduling=SchedulingSettings(poll_interval=1.0, catch_up=server_policy)
    )
    await server.register(HELLO)
    await server.client.create_schedule("hello", "nightly", LISBON_NIGHTS)
    await server.client.update_schedule("nightly", catch_up=own)
    missed = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    async with server.runtime.db.write() as tx:
        await tx.conn.execute(
            sa.update(schedules).where(schedules.c.name == "nightly").values(next_run_at=missed)
        )
    server.runtime.scheduler.wake()

    async def recorded() -> Any:
        return await server.client.schedule_history("nightly")

    (run,) = await wait_until_async(recorded, timeout=30)
    assert run.scheduled_for == missed
    if own == "skip":
        assert run.state == ScheduleRunState.SKIPPED
        assert "the schedule's catch_up is 'skip'" in (run.error or "")
    else:
        assert run.state == ScheduleRunState.STARTED and run.execution_id is not None


async def test_an_auto_schedule_can_be_edited_until_the_workflow_is_registered(server) -> None:
    """Registration puts the option's schedule back when it differs (as it does after a
    changed option); the edited description, input and catch-up policy stay."""
    await server.register(SCHEDULED)
    auto = await server.client.update_schedule(
        "daily_report_auto", cron("0 7 * * *"), description="mine", catch_up="skip"
    )
    assert (auto.auto, auto.schedule_config["cron_expression"]) == (True, "0 7 * * *")
    await server.register(SCHEDULED)
    (again,) = await server.client.list_schedules()
    assert again.schedule_config == cron("0 9 * * MON-FRI").to_config()
    assert (again.id, again.description, again.catch_up) == (auto.id, "mine", "skip")


# -- races with ticks and other writes ----------------------------------------------------------


def _racing_first_read(runtime: Runtime, monkeypatch, write: Any) -> None:
    """Make ``write()`` commit right after the next update has read the row, before it
    writes: what another replica's tick or pause does in that moment."""
    store = runtime.schedules
    find = store._find
    pending = [write]

    async def find_then_race(*args: Any, **kwargs: Any) -> Any:
        row = await find(*args, **kwargs)
        if pending:
            await pending.pop()()
        return row

    monkeypatch.setattr(store, "_find", find_then_race)


async def test_a_tick_claimed_while_an_update_reads_fires_once(server, monkeypatch) -> None:
    await server.register(HELLO)
    client, runtime = server.client, server.runtime
    await client.create_schedule("hello", "nightly", LISBON_NIGHTS)
    tick = await tick_of(runtime, "nightly")
    fired: list[Any] = []

    async def claim() -> None:
        fired.append(await fire(runtime, tick))

    _racing_first_read(runtime, monkeypatch, claim)
    before = datetime.now(UTC)
    updated = await client.update_schedule("nightly", cron("0 5 * * *"))
    assert fired[0] is not None  # the tick went first ...
    # ... and the update, which read the row before that, read it again: the new schedule
    # runs from now, and the fired tick is not due again.
    assert updated.next_run_at in between(cron("0 5 * * *"), before, datetime.now(UTC))
    assert updated.run_count == 1
    assert await fire(runtime, tick) is None
    assert len(await client.schedule_history("nightly")) == 1


async def test_an_update_of_the_input_does_not_move_a_fired_tick_back(server, monkeypatch) -> None:
    await server.register(HELLO)
    client, runtime = server.client, server.runtime
    await client.create_schedule("hello", "nightly", LISBON_NIGHTS)
    tick = await tick_of(runtime, "nightly")

    async def claim() -> None:
        assert await fire(runtime, tick) is not None

    _racing_first_read(runtime, monkeypatch, claim)
    updated = await client.update_schedule("nightly", input="new")
    assert updated.input == "new"
    assert updated.next_run_at == tick.next_run_at + timedelta(days=1)  # where the tick left it
    assert await fire(runtime, tick) is None


async def test_a_pause_while_an_update_reads_stays(server, monkeypatch) -> None:
    await server.register(HELLO)
    client, runtime = server.client, server.runtime
    await client.create_schedule("hello", "nightly", LISBON_NIGHTS)

    async def pause() -> None:
        await runtime.schedules.pause("nightly")

    _racing_first_read(runtime, monkeypatch, pause)
    updated = await client.update_schedule("nightly", cron("0 5 * * *"))
    assert (updated.state, updated.next_run_at) == (ScheduleState.PAUSED, None)
    assert updated.schedule_config == cron("0 5 * * *").to_config()


async def test_an_update_before_the_claim_supersedes_the_read_tick(server) -> None:
    """A scheduler read the tick, then the schedule changed: its claim matches no row; the
    new schedule's first time is the next tick."""
    await server.register(HELLO)
    client, runtime = server.client, server.runtime
    await client.create_schedule("hello", "nightly", LISBON_NIGHTS)
    tick = await tick_of(runtime, "nightly")
    updated = await client.update_schedule("nightly", cron("0 5 * * *"))
    assert await fire(runtime, tick) is None
    assert await client.schedule_history("nightly") == []
    assert await client.get_schedule("nightly") == updated


async def test_a_claim_after_an_update_of_policy_or_input_uses_them(server) -> None:
    """The same next time, a new catch-up policy: the claim of the tick read before is
    given up (its decisions were made with the old policy) and the tick stays due; a new
    input is what the tick then starts with."""
    await server.register(HELLO)
    client, runtime = server.client, server.runtime
    created = await client.create_schedule("hello", "nightly", LISBON_NIGHTS, input="old")
    tick = await tick_of(runtime, "nightly")
    await client.update_schedule("nightly", catch_up="skip", input="new")
    assert await fire(runtime, tick) is None
    unchanged = await client.get_schedule("nightly")
    assert (unchanged.next_run_at, unchanged.run_count) == (created.next_run_at, 0)

    fresh = await tick_of(runtime, "nightly")
    assert fresh.catch_up == "skip"
    run = await fire(runtime, fresh)
    assert run is not None
    assert (await client.status("hello", run["execution_id"])).input == "new"


async def test_on_postgresql_an_update_waits_for_a_claim_in_flight(
    start_server, db_url, monkeypatch
) -> None:
    """Another replica's claim holds the row (not committed yet) when the update writes: the
    update waits, finds the row changed and reads it again; the tick fires once and the new
    schedule runs from now."""
    if not db_url.startswith("postgresql"):
        pytest.skip("row locks between replicas: PostgreSQL")
    server: Server = await start_server()
    await server.register(HELLO)
    client, runtime = server.client, server.runtime
    await client.create_schedule("hello", "nightly", LISBON_NIGHTS)
    tick = await tick_of(runtime, "nightly")
    reads: list[str] = []
    find = runtime.schedules._find

    async def counted_find(conn: Any, ref: str, **kwargs: Any) -> Any:
        reads.append(ref)
        return await find(conn, ref, **kwargs)

    monkeypatch.setattr(runtime.schedules, "_find", counted_find)

    async def waiting_on_a_lock() -> bool:
        async with runtime.db.read() as conn:
            waiting = await conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'UPDATE schedules%'"
                )
            )
            return bool(waiting.scalar())

    before = datetime.now(UTC)
    async with runtime.db.write() as tx:  # the claim of another replica, in flight
        taken = await tx.conn.execute(
            sa.update(schedules)
            .where(schedules.c.id == tick.id, schedules.c.next_run_at == tick.next_run_at)
            .values(next_run_at=tick.next_run_at + timedelta(days=1), updated_at=before)
        )
        assert taken.rowcount == 1
        update = asyncio.create_task(client.update_schedule("nightly", cron("0 5 * * *")))
        await wait_until_async(waiting_on_a_lock, timeout=30)
        assert not update.done()
    updated: ScheduleInfo = await update
    assert len(reads) == 2  # the first write matched no row once the claim committed
    assert updated.schedule_config == cron("0 5 * * *").to_config()
    assert updated.next_run_at in between(cron("0 5 * * *"), before, datetime.now(UTC))
    assert await fire(runtime, tick) is None
