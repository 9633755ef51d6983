"""`await progress(value)`: ephemeral values for whoever watches, never recorded, never replayed."""

from __future__ import annotations

from flux import ExecutionContext, UsageError, task, workflow
from flux.tasks import pause, progress
from flux.tasks.progress import MAX_PROGRESS_BYTES, Progress
from flux.testing import MemoryStore, run


@task
async def count(n: int) -> int:
    for i in range(n):
        await progress({"done": i + 1, "of": n})
    return n


@workflow
async def counting(ctx: ExecutionContext[int]):
    await progress("starting")
    total = await count(ctx.input)
    answer = await pause("more?")
    await progress(f"resumed with {answer}")
    return total + await count(1)


def test_values_reach_the_callback_and_none_is_recorded() -> None:
    seen: list[Progress] = []
    store = MemoryStore()

    paused = run(counting, 2, store=store, on_progress=seen.append)

    assert [(p.task, p.value) for p in seen] == [
        ("counting", "starting"),
        ("count", {"done": 1, "of": 2}),
        ("count", {"done": 2, "of": 2}),
    ]
    assert {p.execution_id for p in seen} == {paused.execution_id}
    assert all(p.timestamp.tzinfo is not None for p in seen)
    recorded = repr([e.value for e in paused.events])
    assert "starting" not in recorded and "done" not in recorded


def test_replay_publishes_nothing_again() -> None:
    store = MemoryStore()
    paused = run(counting, 2, store=store)
    seen: list[Progress] = []

    done = run(counting, "yes", execution_id=paused.execution_id, store=store,
               on_progress=seen.append)  # fmt: skip

    assert done.output == 3
    # The first count() and the "starting" before it replayed: only what ran anew published.
    assert [(p.task, p.value) for p in seen] == [
        ("counting", "resumed with yes"),
        ("count", {"done": 1, "of": 1}),
    ]


def test_a_value_over_64_kib_is_refused() -> None:
    @workflow
    async def loud(ctx: ExecutionContext[int]):
        await progress("x" * (ctx.input - 2))  # two bytes of JSON quotes

    assert run(loud, MAX_PROGRESS_BYTES, on_progress=lambda p: None).has_succeeded
    failed = run(loud, MAX_PROGRESS_BYTES + 1, on_progress=lambda p: None)
    assert isinstance(failed.output, UsageError)
    assert str(failed.output) == (
        "progress(...): the value is 65537 bytes as JSON, over the limit of 65536 (64 KiB); "
        "publish less at a time"
    )


def test_a_value_that_is_not_json_is_refused() -> None:
    @workflow
    async def odd(ctx: ExecutionContext[None]):
        await progress({1, 2})

    failed = run(odd)
    assert isinstance(failed.output, UsageError)
    assert "the value must be JSON" in str(failed.output)


async def test_outside_a_workflow_it_does_nothing() -> None:
    await progress({"anything": [1, 2]})
    assert await count(2) == 2


def test_local_runs_take_a_callback(flux_home) -> None:
    seen: list[object] = []
    ctx = counting.run(1, on_progress=lambda p: seen.append(p.value))
    assert ctx.is_paused
    assert seen == ["starting", {"done": 1, "of": 1}]


def test_the_concepts_example_runs(flux_home) -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "concepts.md").read_text()
    section = text[text.index("## Progress") :]
    (block,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 2)[0] + "\n", re.S)
    exec(compile(block, "concepts.md", "exec"), {"__name__": "concepts_example"})
