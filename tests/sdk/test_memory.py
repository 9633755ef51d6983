"""Long-term memory (flux.memory): JSON values by scope and key that outlive executions; inside
a workflow every read and write is a recorded task, so replay sees what the execution saw."""

from __future__ import annotations

import asyncio

import pytest
from flux import ExecutionContext, UsageError, memory, workflow
from flux.tasks import pause
from flux.testing import MemoryStore, run


@workflow
async def note_taker(ctx: ExecutionContext[str]):
    before = await memory.get("user:1", "note", "nothing")
    await memory.put("user:1", "note", ctx.input)
    await pause("after")
    return {"before": before, "now": await memory.get("user:1", "note")}


def test_values_outlive_executions_in_the_local_store(flux_home) -> None:
    first = note_taker.run("tea")
    note_taker.run(None, execution_id=first.execution_id)
    second = note_taker.run("coffee")
    done = note_taker.run(None, execution_id=second.execution_id)

    assert done.output == {"before": "tea", "now": "coffee"}
    names = [e.name for e in done.events if e.type.value == "TASK_STARTED"]
    assert names == ["memory.get", "memory.put", "pause", "memory.get"]


def test_replay_sees_what_the_execution_saw(flux_home) -> None:
    paused = note_taker.run("tea")
    # Memory changes while the execution waits; the replayed read keeps its recorded value.
    asyncio.run(memory.put("user:1", "note", "changed meanwhile"))
    done = note_taker.run(None, execution_id=paused.execution_id)
    assert done.output == {"before": "nothing", "now": "changed meanwhile"}


async def test_code_outside_a_workflow_reads_and_writes_the_local_store(flux_home) -> None:
    await memory.put("team", "lead", {"name": "Ana", "since": 2021})
    await memory.put("team", "size", 7)
    assert await memory.get("team", "lead") == {"name": "Ana", "since": 2021}
    assert await memory.items("team") == {"lead": {"name": "Ana", "since": 2021}, "size": 7}
    assert await memory.delete("team", "size") is True
    assert await memory.delete("team", "size") is False
    assert await memory.get("team", "size", "gone") == "gone"


def test_the_in_memory_store_keeps_memory_for_tests() -> None:
    store = MemoryStore()
    paused = run(note_taker, "tea", store=store)
    done = run(note_taker, None, execution_id=paused.execution_id, store=store)
    assert done.output == {"before": "nothing", "now": "tea"}
    assert store.memory == {("user:1", "note"): "tea"}


async def test_bad_values_and_names_are_refused(flux_home) -> None:
    with pytest.raises(UsageError, match="give JSON"):
        await memory.put("s", "k", {1, 2})
    with pytest.raises(UsageError, match="over the limit of 65536"):
        await memory.put("s", "k", "x" * 70_000)
    with pytest.raises(UsageError, match="memory key ''"):
        await memory.get("s", "")
    with pytest.raises(UsageError, match="memory scope"):
        await memory.items("s" * 300)
    with pytest.raises(UsageError, match="without '/'"):
        await memory.put("a/b", "k", 1)
