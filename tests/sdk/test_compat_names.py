"""Public names that code written for the original flux-core uses beyond the spec's README."""

from __future__ import annotations

import json

import flux
from flux import ExecutionContext, call, workflow
from flux.schedules import cron, interval, once
from flux.tasks import randint, randrange
from flux.tasks.subworkflow import call as call_from_tasks


@workflow
async def dice(ctx: ExecutionContext[None]) -> list[int]:
    return [await randrange(10), await randrange(100, 200, 10), await randint(1, 6)]


@workflow
async def child(ctx: ExecutionContext[int]) -> int:
    return ctx.input * 2


@workflow
async def parent(ctx: ExecutionContext[int]) -> int:
    return await call(child, ctx.input) + 1


def test_randrange_is_recorded_and_replays_the_same_number(db_path):
    first = dice.run()
    small, stepped, die = first.output
    assert 0 <= small < 10 and stepped in range(100, 200, 10) and 1 <= die <= 6
    recorded = [
        e for e in first.events if e.name == "randrange" and e.type.value == "TASK_COMPLETED"
    ]
    assert [e.value for e in recorded] == [small, stepped]
    from flux.context import ExecutionContext as Ctx
    from flux.testing import MemoryStore
    from flux.testing import run as replay

    store = MemoryStore()
    # Replaying the recorded history returns the recorded numbers, not fresh draws.
    events = [e for e in first.events if not e.type.value.startswith("WORKFLOW_C")]
    store.executions[first.execution_id] = Ctx("dice", None, first.execution_id, events=events)
    assert replay(dice, execution_id=first.execution_id, store=store).output == first.output


def test_call_is_importable_from_flux(db_path):
    assert call is call_from_tasks
    assert "call" in flux.__all__
    assert parent.run(20).output == 41


def test_to_json_is_the_whole_context(db_path):
    ctx = parent.run(1)
    data = json.loads(ctx.to_json())
    assert (data["workflow_name"], data["state"], data["input"], data["output"]) == (
        "parent",
        "COMPLETED",
        1,
        3,
    )
    assert data["events"][0]["type"] == "WORKFLOW_STARTED"


def test_schedules_have_to_dict():
    assert cron("0 9 * * 1-5", timezone="Europe/Lisbon").to_dict() == {
        "type": "cron",
        "cron_expression": "0 9 * * 1-5",
        "timezone": "Europe/Lisbon",
    }
    for schedule in (interval(hours=6), once("2030-01-01T00:00:00Z")):
        assert schedule.to_dict() == schedule.to_config()
