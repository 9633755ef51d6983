"""Replay of committed event histories (tests/sdk/golden/*.json).

The files pin the replay contract across versions: task identities (name + SHA-256 of the
canonical arguments + occurrence), per-scope call order and how recorded outcomes come back.
A change that breaks them breaks the resumption of executions already in users' databases.

Regenerate (only for a deliberate change of the contract, see golden/README.md)::

    FLUX_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/sdk/test_golden.py
"""

from __future__ import annotations

import builtins
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from flux import ExecutionContext, task, workflow
from flux.domain import EventType, ExecutionEvent
from flux.errors import NonDeterminismError
from flux.runner import WorkflowRun
from flux.tasks import parallel

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("FLUX_REGENERATE_GOLDEN") == "1"

calls: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset_calls():
    calls.clear()


# -- the workflows the histories were recorded from ------------------------------------------------


@task
async def validate(order: dict[str, Any]) -> dict[str, Any]:
    calls["validate"] += 1
    return {**order, "valid": True}


@task
async def price(sku: str, qty: int) -> int:
    calls["price"] += 1
    return {"apple": 3, "pear": 5}[sku] * qty


@task
async def reserve(sku: str) -> str:
    calls["reserve"] += 1
    raise ValueError(f"{sku} is out of stock")


@task
async def charge(amount: int) -> str:
    calls["charge"] += 1
    return f"receipt-{amount}"


@task
async def log_line(text: str) -> None:
    calls["log_line"] += 1


@task
async def notify(customer: str) -> str:
    calls["notify"] += 1
    await log_line(f"notify {customer}")
    await log_line(f"notify {customer}")
    return f"notified {customer}"


@workflow.with_options(name="order_flow")
async def order_flow(ctx: ExecutionContext[dict[str, Any]]):
    order = await validate(ctx.input)
    prices = await parallel(*(price(item["sku"], item["qty"]) for item in order["items"]))
    try:
        await reserve("gadget")
        note = "reserved"
    except ValueError as exc:
        note = str(exc)
    receipt = await charge(sum(prices))
    first = await notify(order["customer"])
    second = await notify(order["customer"])
    return {"total": sum(prices), "receipt": receipt, "note": note, "notes": [first, second]}


@workflow.with_options(name="order_flow")
async def order_flow_changed(ctx: ExecutionContext[dict[str, Any]]):
    """A later edit: charges before trying the reservation."""
    order = await validate(ctx.input)
    prices = await parallel(*(price(item["sku"], item["qty"]) for item in order["items"]))
    receipt = await charge(sum(prices))
    return {"receipt": receipt}


ORDER = {"customer": "ada", "items": [{"sku": "apple", "qty": 2}, {"sku": "pear", "qty": 1}]}
EXPECTED_OUTPUT = {
    "total": 11,
    "receipt": "receipt-11",
    "note": "gadget is out of stock",
    "notes": ["notified ada", "notified ada"],
}


# -- file format ----------------------------------------------------------------------------------


class MemoryCheckpointer:
    """Keeps saved events in memory: replay tests never touch a database."""

    def __init__(self) -> None:
        self.saved: list[ExecutionEvent] = []

    def save(self, ctx: ExecutionContext[Any], events: list[ExecutionEvent]) -> None:
        self.saved.extend(events)

    async def finish(self, ctx: ExecutionContext[Any]) -> None:
        pass


def _encode(event: ExecutionEvent) -> dict[str, Any]:
    value = event.value
    if isinstance(value, BaseException):
        value = {"error": type(value).__name__, "message": str(value)}
    return {
        "type": event.type.value,
        "source_id": event.source_id,
        "name": event.name,
        "scope": event.scope,
        "value": value,
    }


def load_history(name: str) -> tuple[dict[str, Any], ExecutionContext[Any]]:
    """A golden file as an ExecutionContext. Failure values name a builtin exception type."""
    data = json.loads((GOLDEN / name).read_text())
    events = []
    for raw in data["events"]:
        type_ = EventType(raw["type"])
        value = raw["value"]
        if type_ in (EventType.TASK_FAILED, EventType.TASK_RETRY_FAILED):
            value = getattr(builtins, value["error"])(value["message"])
        events.append(
            ExecutionEvent(type_, raw["source_id"], raw["name"], value, scope=raw["scope"])
        )
    ctx: ExecutionContext[Any] = ExecutionContext(
        data["workflow"], data["input"], data["execution_id"], events=events
    )
    return data, ctx


def _write_history(name: str, wf: workflow, ctx: ExecutionContext[Any], note: str) -> None:
    head = {"note": note, "workflow": wf.name, "execution_id": ctx.execution_id}
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    lines.append(f'  "input": {json.dumps(ctx.input)},')
    events = ",\n".join(f"    {json.dumps(_encode(e))}" for e in ctx.events)
    # One event per line: a change to the contract shows as a readable diff.
    (GOLDEN / name).write_text(
        "{\n" + "\n".join(lines) + '\n  "events": [\n' + events + "\n  ]\n}\n"
    )


async def _replay(wf: workflow, ctx: ExecutionContext[Any]) -> MemoryCheckpointer:
    checkpointer = MemoryCheckpointer()
    await WorkflowRun(wf, ctx, checkpointer).execute()
    return checkpointer


# -- the tests ------------------------------------------------------------------------------------


@pytest.mark.skipif(not REGENERATE, reason="set FLUX_REGENERATE_GOLDEN=1 to rewrite the files")
async def test_regenerate_golden_histories():
    ctx: ExecutionContext[Any] = ExecutionContext("order_flow", ORDER, "golden-order-flow")
    await _replay(order_flow, ctx)
    assert ctx.output == EXPECTED_OUTPUT
    _write_history(
        "order_flow_completed.json",
        order_flow,
        ctx,
        "A completed run of order_flow: replays without running any task.",
    )
    # The same run as if its process died while charge() ran.
    charge_at = next(
        i for i, e in enumerate(ctx.events) if e.name == "charge" and e.type.value == "TASK_STARTED"
    )
    crashed: ExecutionContext[Any] = ExecutionContext(
        "order_flow", ORDER, "golden-order-flow-crashed", events=ctx.events[: charge_at + 1]
    )
    _write_history(
        "order_flow_crashed_in_charge.json",
        order_flow,
        crashed,
        "order_flow interrupted inside charge(): replay runs charge and what follows only.",
    )


async def test_completed_history_replays_without_running_tasks():
    _, ctx = load_history("order_flow_completed.json")
    recorded = list(ctx.events)
    # Drop the final event: the replay must reach the same end by itself.
    ctx = ExecutionContext(ctx.workflow_name, ctx.input, ctx.execution_id, events=recorded[:-1])

    saved = await _replay(order_flow, ctx)

    assert calls == {}  # every task came back from the history
    assert ctx.has_succeeded
    assert ctx.output == EXPECTED_OUTPUT == recorded[-1].value
    assert [e.type for e in saved.saved] == [EventType.WORKFLOW_COMPLETED]


async def test_interrupted_history_runs_only_what_was_left():
    _, ctx = load_history("order_flow_crashed_in_charge.json")

    saved = await _replay(order_flow, ctx)

    assert ctx.output == EXPECTED_OUTPUT
    assert calls == {"charge": 1, "notify": 2, "log_line": 4}
    # charge's TASK_STARTED was already logged: the rerun adds only its completion.
    assert [(e.type.value, e.name) for e in saved.saved][:1] == [("TASK_COMPLETED", "charge")]
    started = [e.source_id for e in saved.saved if e.type is EventType.TASK_STARTED]
    assert len(started) == len(set(started)) == 6  # notify x2, log_line x4, distinct ids


async def test_changed_code_raises_non_determinism_naming_the_first_mismatch():
    _, ctx = load_history("order_flow_completed.json")
    recorded = len(ctx.events)

    with pytest.raises(NonDeterminismError) as info:
        await _replay(order_flow_changed, ctx)

    message = str(info.value)
    assert "call #2 in the workflow body" in message
    assert "called 'charge' where the history has 'reserve'" in message
    assert info.value.details["position"] == 2
    assert info.value.details["expected"].startswith("reserve:")
    assert calls == {}  # nothing ran before the divergence was found
    assert len(ctx.events) == recorded


async def test_changed_arguments_are_a_mismatch_too():
    _, ctx = load_history("order_flow_completed.json")
    ctx.input = {**ctx.input, "customer": "grace"}  # same calls, different arguments

    with pytest.raises(NonDeterminismError, match="arguments that differ"):
        await _replay(order_flow, ctx)


def test_golden_files_are_well_formed():
    for path in sorted(GOLDEN.glob("*.json")):
        data = json.loads(path.read_text())
        assert set(data) == {"note", "workflow", "execution_id", "input", "events"}, path
        for raw in data["events"]:
            assert set(raw) == {"type", "source_id", "name", "scope", "value"}, path
            EventType(raw["type"])
