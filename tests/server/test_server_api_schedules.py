"""The schedule endpoints over HTTP: create, list, show, pause, resume, delete, history, bad
input, and the ``<workflow>_auto`` schedules that follow a workflow's ``schedule=`` option."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from flux.config import SchedulingSettings
from flux.errors import ApiError, ConflictError, NotFoundError
from flux.protocol import ScheduleState
from flux.schedules import cron, interval, once
from server_support import HELLO

WEEKDAYS = {"type": "cron", "cron_expression": "0 9 * * MON-FRI", "timezone": "UTC"}

SCHEDULED = b"""
from flux import workflow, cron

@workflow.with_options(name="daily_report", schedule=cron("0 9 * * MON-FRI", timezone="UTC"))
async def daily_report_workflow(ctx):
    return "report"

@workflow
async def plain(ctx):
    return "plain"
"""

RESCHEDULED = SCHEDULED.replace(
    b'cron("0 9 * * MON-FRI", timezone="UTC")', b'interval(hours=6, timezone="UTC")'
).replace(b"import workflow, cron", b"import workflow, interval")

UNSCHEDULED = SCHEDULED.replace(b', schedule=cron("0 9 * * MON-FRI", timezone="UTC")', b"").replace(
    b"import workflow, cron", b"import workflow"
)


async def test_create_show_list_pause_resume_delete(server) -> None:
    await server.register(HELLO)
    created = await server.client.create_schedule(
        "hello", "weekday_hello", WEEKDAYS, description="Daily business report", input="World"
    )
    assert created.state == ScheduleState.ACTIVE
    assert created.schedule_config == WEEKDAYS
    assert (created.description, created.input, created.auto) == (
        "Daily business report",
        "World",
        False,
    )
    assert created.next_run_at is not None and created.next_run_at > datetime.now(UTC)
    assert created.next_run_at.hour == 9 and created.next_run_at.weekday() < 5
    assert (created.run_count, created.failure_count, created.last_run_at) == (0, 0, None)

    # By id and by name.
    assert await server.client.get_schedule(created.id) == created
    assert await server.client.get_schedule("weekday_hello") == created

    # A Schedule value works as well as its config; interval parts add up.
    other = await server.client.create_schedule("hello", "every_90m", interval(hours=1, minutes=30))
    assert other.schedule_config["interval_seconds"] == 5400

    listed = await server.client.list_schedules()
    assert [s.name for s in listed] == ["every_90m", "weekday_hello"]
    workflow = (await server.client.list_workflows())[0]
    for key in ("hello", workflow.id):  # the workflow's name or a version id
        assert [s.name for s in await server.client.list_schedules(key)] == [
            "every_90m",
            "weekday_hello",
        ]
    assert await server.client.list_schedules("no_such_workflow") == []

    paused = await server.client.pause_schedule("weekday_hello")
    assert (paused.state, paused.next_run_at) == (ScheduleState.PAUSED, None)
    assert await server.client.pause_schedule(created.id) == paused  # idempotent
    active = await server.client.list_schedules(active_only=True)
    assert [s.name for s in active] == ["every_90m"]

    resumed = await server.client.resume_schedule(created.id)
    assert resumed.state == ScheduleState.ACTIVE
    assert resumed.next_run_at == created.next_run_at  # the next 09:00 on a weekday again

    assert await server.client.schedule_history(created.id) == []

    deleted = await server.client.delete_schedule("weekday_hello")
    assert (deleted.id, deleted.name, deleted.deleted) == (created.id, "weekday_hello", True)
    with pytest.raises(NotFoundError, match="weekday_hello"):
        await server.client.get_schedule("weekday_hello")
    assert [s.name for s in await server.client.list_schedules()] == ["every_90m"]


async def test_next_run_follows_the_time_zone(server) -> None:
    """Cron runs on the wall clock of its zone (DST rules are flux.schedules')."""
    await server.register(HELLO)
    before = datetime.now(UTC)
    lisbon = cron("30 2 * * *", timezone="Europe/Lisbon")
    created = await server.client.create_schedule("hello", "lisbon_night", lisbon)
    after = datetime.now(UTC)
    assert created.next_run_at in {lisbon.next_run_after(before), lisbon.next_run_after(after)}
    assert created.schedule_config["timezone"] == "Europe/Lisbon"


async def test_the_spec_request_body(server) -> None:
    """The exact body of the README's ``POST /schedules`` example, over raw HTTP."""
    await server.register(HELLO.replace(b"hello", b"my_workflow"))
    body = {
        "workflow_name": "my_workflow",
        "name": "schedule_name",
        "schedule_config": {
            "type": "cron",
            "cron_expression": "0 9 * * MON-FRI",
            "timezone": "UTC",
        },
        "description": "Schedule description",
    }
    http = server.http
    answer = await http.post("/schedules", json=body)
    assert answer.status_code == 201, answer.text
    schedule_id = answer.json()["id"]
    listed = await http.get(
        "/schedules", params={"workflow_id": "my_workflow", "active_only": "true"}
    )
    assert [s["id"] for s in listed.json()] == [schedule_id]
    for path in ("/pause", "/resume"):
        assert (await http.post(f"/schedules/{schedule_id}{path}")).status_code == 200
    history = await http.get(f"/schedules/{schedule_id}/history", params={"limit": 50})
    assert (history.status_code, history.json()) == (200, [])
    assert (await http.delete(f"/schedules/{schedule_id}")).status_code == 200


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"type": "cron", "cron_expression": "61 * * * *"}, "invalid cron expression '61 * * * *'"),
        ({"type": "cron", "cron_expression": "0 9 * *"}, "expected five fields"),
        ({"type": "cron", "cron_expression": "0 0 30 2 *"}, "never fires"),
        (
            {"type": "cron", "cron_expression": "0 9 * * *", "timezone": "Mars/Base"},
            "unknown timezone",
        ),
        ({"type": "interval", "interval_seconds": 0}, "longer than zero"),
        ({"type": "interval", "interval_minutes": -5}, "must not be negative"),
        ({"type": "once", "run_at": "tomorrow"}, "run_at"),
        ({"type": "once", "run_at": "2001-01-01T00:00:00Z"}, "in the past"),
        ({"type": "weekly"}, "unknown schedule type 'weekly'"),
        ({"cron_expression": "0 9 * * *"}, "has no 'type'"),
        ({"type": "cron", "cron_expression": "0 9 * * *", "color": "red"}, "unknown key 'color'"),
    ],
)
async def test_an_invalid_schedule_is_400_with_the_reason(server, config, reason) -> None:
    await server.register(HELLO)
    with pytest.raises(ApiError) as caught:
        await server.client.create_schedule("hello", "bad", config)
    assert caught.value.status_code == 400
    assert reason in caught.value.message
    assert await server.client.list_schedules() == []


async def test_other_bad_requests(server) -> None:
    await server.register(HELLO)
    with pytest.raises(NotFoundError, match="no workflow named 'missing'"):
        await server.client.create_schedule("missing", "s", WEEKDAYS)
    await server.client.create_schedule("hello", "taken", WEEKDAYS)
    with pytest.raises(ConflictError, match="'taken' exists"):
        await server.client.create_schedule("hello", "taken", cron("@daily"))
    for name in ("", "a/b", "x" * 256, "tab\there"):
        with pytest.raises(ApiError) as caught:
            await server.client.create_schedule("hello", name, WEEKDAYS)
        assert caught.value.status_code == 400, name
        assert "invalid schedule name" in caught.value.message

    for call in (
        server.client.get_schedule,
        server.client.pause_schedule,
        server.client.resume_schedule,
        server.client.delete_schedule,
        server.client.schedule_history,
    ):
        with pytest.raises(NotFoundError, match="no schedule 'nope'"):
            await call("nope")

    http = server.http
    missing_field = await http.post("/schedules", json={"workflow_name": "hello", "name": "x"})
    assert missing_field.status_code == 422
    assert "schedule_config" in missing_field.json()["message"]
    not_json = await http.post(
        "/schedules", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    for limit in ("0", "1001", "ten"):
        answer = await http.get("/schedules/taken/history", params={"limit": limit})
        assert answer.status_code == 422, limit


async def test_a_once_schedule_within_the_tolerance_is_accepted(server) -> None:
    """A ``run_at`` a moment ago (less than ``once_schedule_tolerance``) runs at once."""
    await server.register(HELLO)
    just_now = datetime.now(UTC) - timedelta(seconds=5)
    created = await server.client.create_schedule("hello", "now", once(just_now))
    assert created.next_run_at == just_now


# -- auto schedules -----------------------------------------------------------------------------


async def test_auto_schedule_follows_the_workflow_option(server) -> None:
    await server.register(SCHEDULED)
    (auto,) = await server.client.list_schedules()
    assert (auto.name, auto.workflow_name, auto.auto) == ("daily_report_auto", "daily_report", True)
    assert auto.schedule_config == {
        "type": "cron",
        "cron_expression": "0 9 * * MON-FRI",
        "timezone": "UTC",
    }
    assert auto.state == ScheduleState.ACTIVE and auto.next_run_at is not None

    # Registering the same file again changes nothing.
    await server.register(SCHEDULED)
    assert await server.client.list_schedules() == [auto]

    # A changed option updates the schedule in place.
    await server.register(RESCHEDULED)
    (updated,) = await server.client.list_schedules()
    assert updated.id == auto.id
    assert updated.schedule_config["interval_seconds"] == 6 * 3600
    assert updated.next_run_at != auto.next_run_at

    # Paused by a person, it stays paused through an update.
    await server.client.pause_schedule("daily_report_auto")
    await server.register(SCHEDULED)
    (still_paused,) = await server.client.list_schedules()
    assert still_paused.state == ScheduleState.PAUSED
    assert still_paused.schedule_config["type"] == "cron"

    # Without the option, the schedule goes.
    await server.register(UNSCHEDULED)
    assert await server.client.list_schedules() == []


async def test_concurrent_registrations_make_one_auto_schedule(server) -> None:
    await asyncio.gather(*(server.register(SCHEDULED) for _ in range(3)))
    assert [s.name for s in await server.client.list_schedules()] == ["daily_report_auto"]


async def test_auto_schedules_leave_other_schedules_alone(server) -> None:
    await server.register(UNSCHEDULED)
    mine = await server.client.create_schedule("plain", "daily_report_auto", WEEKDAYS)
    await server.register(SCHEDULED)  # would create daily_report_auto: the name is taken
    assert await server.client.list_schedules() == [mine]
    await server.register(UNSCHEDULED)  # and removing the option does not remove it
    assert await server.client.list_schedules() == [mine]


async def test_auto_schedule_suffix_and_switch(start_server) -> None:
    custom = await start_server(scheduling=SchedulingSettings(auto_schedule_suffix="-cron"))
    await custom.register(SCHEDULED)
    assert [s.name for s in await custom.client.list_schedules()] == ["daily_report-cron"]


async def test_auto_schedules_can_be_disabled(start_server) -> None:
    off = await start_server(scheduling=SchedulingSettings(auto_schedule_enabled=False))
    await off.register(SCHEDULED)
    assert await off.client.list_schedules() == []
