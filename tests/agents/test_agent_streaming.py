"""What an agent publishes as progress while it runs: reply text a few tokens at a time, usage
per turn, tool starts and ends, approvals; nothing of it recorded, nothing of it replayed."""

from __future__ import annotations

from typing import Any

from flux import ExecutionContext, task, workflow
from flux.testing import MemoryStore, run
from flux_agents import Agent

from tests.agents.fake_provider import FakeProvider, Reply


@task
async def lookup(term: str) -> str:
    """Look a term up."""
    if term == "nothing":
        raise LookupError("no such term")
    return f"{term}: found"


def shown(values: list[Any]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for v in values:
        rest = {k: v[k] for k in ("turn", "tool", "ok", "pause") if k in v}
        out.append((v["type"], *rest.values()))
    return out


def test_a_streamed_run_publishes_text_usage_and_tools(provider: FakeProvider) -> None:
    long_answer = "Flux records every step. " * 6  # 150 characters: published in pieces
    provider.add(
        Reply(text="Let me look.", tool_calls=[("lookup", {"term": "flux"}),
                                               ("lookup", {"term": "nothing"})]),
        Reply(text=long_answer, usage=(30, 40)),
    )  # fmt: skip
    agent = Agent("openai/fake", name="guide", tools=[lookup], stream=True,
                  api_base=provider.openai_base)  # fmt: skip
    seen: list[Any] = []

    @workflow
    async def explain(ctx: ExecutionContext[str]):
        return (await agent.run(ctx.input)).output

    store = MemoryStore()
    ctx = run(explain, "What is flux?", store=store, on_progress=lambda p: seen.append(p))

    assert ctx.output == long_answer
    values = [p.value for p in seen]
    assert all(v["agent"] == "guide" for v in values)
    events = [e for e in shown(values) if e[0] != "text"]
    assert events[:3] == [("usage", 1), ("tool_start", "lookup"), ("tool_start", "lookup")]
    assert sorted(events[3:5]) == [("tool_end", "lookup", False), ("tool_end", "lookup", True)]
    assert events[5:] == [("usage", 2)]
    first_turn = [v["text"] for v in values if v["type"] == "text" and v["turn"] == 1]
    assert "".join(first_turn) == "Let me look."
    assert shown(values).index(("usage", 1)) > shown(values).index(("text", 1))
    texts = [v["text"] for v in values if v["type"] == "text" and v["turn"] == 2]
    assert "".join(texts) == long_answer and len(texts) >= 2  # coalesced, not per token
    assert values[-1] == {
        "agent": "guide", "type": "usage", "turn": 2, "cost": None,
        "usage": {"prompt_tokens": 30, "completion_tokens": 40, "total_tokens": 70},
    }  # fmt: skip
    assert {p.task for p in seen if p.value["type"] == "text"} == {"guide.turn"}
    assert {p.task for p in seen if p.value["type"] != "text"} == {"guide"}
    recorded = repr([e.value for e in store.events(ctx.execution_id)])
    assert "tool_start" not in recorded and "'type': 'text'" not in recorded


def test_approvals_are_announced_and_a_replay_publishes_nothing(provider: FakeProvider) -> None:
    provider.add(Reply(text=None, tool_calls=[("lookup", {"term": "x"})]), Reply(text="done"))
    agent = Agent("openai/fake", tools=[lookup], approve=[lookup], api_base=provider.openai_base)

    @workflow
    async def careful(ctx: ExecutionContext[str]):
        return (await agent.run(ctx.input)).output

    store = MemoryStore()
    first: list[Any] = []
    paused = run(careful, "go", store=store, on_progress=lambda p: first.append(p.value))
    assert shown(first) == [("usage", 1), ("approval", "lookup", "approve:call_1_0")]

    later: list[Any] = []
    done = run(careful, True, execution_id=paused.execution_id, store=store,
               on_progress=lambda p: later.append(p.value))  # fmt: skip

    assert done.output == "done"
    # Only what ran anew: the recorded turn 1 and its approval were not published again.
    assert shown(later) == [
        ("tool_start", "lookup"),
        ("tool_end", "lookup", True),
        ("usage", 2),
    ]
