"""Long-term memory for agents: facts the model keeps through tools, that code reads and writes
too, that outlive the execution; every read and write recorded."""

from __future__ import annotations

import json

from flux import ExecutionContext, workflow
from flux.testing import MemoryStore, run
from flux_agents import Agent, LongTermMemory

from tests.agents.fake_provider import FakeProvider, Reply


def test_the_model_remembers_and_recalls_across_executions(provider: FakeProvider) -> None:
    facts = LongTermMemory("user:42")
    assistant = Agent("openai/fake", long_term=facts, api_base=provider.openai_base)

    @workflow
    async def chat(ctx: ExecutionContext[str]):
        return (await assistant.run(ctx.input)).output

    store = MemoryStore()
    provider.add(
        Reply(text=None, tool_calls=[("remember_fact", {"key": "language", "fact": "Galician"})]),
        Reply(text="Noted."),
        Reply(text=None, tool_calls=[("recall_facts", {})]),
        Reply(text="You speak Galician."),
    )
    first = run(chat, "I speak Galician.", store=store)
    second = run(chat, "What do I speak?", store=store)

    assert (first.output, second.output) == ("Noted.", "You speak Galician.")
    assert store.memory == {("user:42", "language"): "Galician"}
    tool_names = [t["function"]["name"] for t in provider.chat_requests()[0].body["tools"]]
    assert tool_names == ["remember_fact", "recall_facts", "forget_fact"]
    recalled = provider.chat_requests()[3].messages[-1]
    assert json.loads(recalled["content"]) == {"language": "Galician"}
    recorded = [e.name for e in second.events if e.type.value == "TASK_STARTED"]
    assert recorded == ["agent", "agent.turn", "recall_facts", "memory.items", "agent.turn"]


def test_code_reads_and_writes_the_same_facts(provider: FakeProvider) -> None:
    facts = LongTermMemory("project:atlas")

    @workflow
    async def setup(ctx: ExecutionContext[None]):
        await facts.remember("deadline", "2026-03-01")
        await facts.remember("owners", ["ana", "bo"])
        before = await facts.facts()
        forgot = await facts.forget("owners")
        after = [await facts.recall("owners", "none"), await facts.recall("deadline")]
        return [before, forgot, *after]

    assert run(setup).output == [
        {"deadline": "2026-03-01", "owners": ["ana", "bo"]},
        True,
        "none",
        "2026-03-01",
    ]
