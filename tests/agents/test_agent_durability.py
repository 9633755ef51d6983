"""Agents in workflows against the fake provider: what is recorded, what replay sends (nothing),
and how tool results and tool errors reach the model."""

from __future__ import annotations

import asyncio
import json

import pytest
from flux import ExecutionContext, NonDeterminismError, task, workflow
from flux.tasks import pause
from flux.testing import MemoryStore, run
from flux_agents import Agent

from tests.agents.fake_provider import FakeProvider, Reply

added: list[tuple[int, int]] = []


@task
async def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    added.append((a, b))
    return a + b


@task
async def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


def calculator(provider: FakeProvider, **options) -> Agent:
    return Agent(
        "openai/fake",
        system="You calculate.",
        tools=[add, divide],
        api_base=provider.openai_base,
        **options,
    )


def ask_then_review(agent: Agent):
    @workflow.with_options(name="ask_then_review")
    async def flow(ctx: ExecutionContext[str]):
        result = await agent.run(ctx.input)
        verdict = await pause("review", data={"answer": result.output})
        return {"answer": result.output, "verdict": verdict, "turns": result.turns}

    return flow


def test_turns_and_tools_are_recorded_with_small_arguments(provider: FakeProvider) -> None:
    added.clear()
    provider.add(
        Reply(text=None, tool_calls=[("add", {"a": 2, "b": 3})], usage=(12, 4)),
        Reply(text="It is 5.", usage=(30, 3)),
    )
    agent = calculator(provider)

    @workflow
    async def sums(ctx: ExecutionContext[str]):
        return await agent.run(ctx.input)

    ctx = run(sums, "2+3?")

    result = ctx.output
    assert result.output == "It is 5." and result.turns == 2
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (42, 7)
    assert result.usage.total_tokens == 49
    assert result.cost is None  # the fake model has no price
    assert [m["role"] for m in result.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert result.messages[3]["content"] == "5"
    assert added == [(2, 3)]
    # Each turn's recorded arguments are its number and the conversation's digest, never the
    # messages: they do not grow with the conversation.
    turns = [e for e in ctx.events if e.name == "agent.turn" and e.type.value == "TASK_STARTED"]
    assert [e.value[0]["turn"] for e in turns] == [1, 2]
    assert all(set(e.value[0]) == {"turn", "context"} for e in turns)
    # The second request carried the tool's result and the tools' schemas.
    second = provider.chat_requests()[1].body
    assert second["messages"][-1] == {
        "role": "tool", "tool_call_id": "call_1_0", "name": "add", "content": "5",
    }  # fmt: skip
    assert [t["function"]["name"] for t in second["tools"]] == ["add", "divide"]
    assert second["tools"][0]["function"]["description"] == "Add two whole numbers."


def test_a_resumed_execution_sends_no_request_for_recorded_turns(provider: FakeProvider) -> None:
    added.clear()
    provider.add(Reply(text=None, tool_calls=[("add", {"a": 1, "b": 1})]), Reply(text="2"))
    flow = ask_then_review(calculator(provider))
    store = MemoryStore()

    paused = run(flow, "1+1?", store=store)
    assert paused.is_paused and paused.pauses[0].data == {"answer": "2"}
    assert len(provider.chat_requests()) == 2

    done = run(flow, "fine", execution_id=paused.execution_id, store=store)

    assert done.output == {"answer": "2", "verdict": "fine", "turns": 2}
    assert len(provider.chat_requests()) == 2  # replay asked the model nothing
    assert added == [(1, 1)]  # nor ran the tool again


def test_a_changed_system_prompt_raises_non_determinism_in_flight(provider: FakeProvider) -> None:
    provider.add(Reply(text=None, tool_calls=[("add", {"a": 1, "b": 2})]), Reply(text="3"))
    store = MemoryStore()
    first = Agent("openai/fake", system="Be brief.", tools=[add], approve=[add],
                  api_base=provider.openai_base)  # fmt: skip
    changed = Agent("openai/fake", system="Be verbose.", tools=[add], approve=[add],
                    api_base=provider.openai_base)  # fmt: skip

    paused = run(ask_then_review(first), "1+2?", store=store)
    assert paused.is_paused  # waiting for the tool's approval, the agent in flight

    with pytest.raises(NonDeterminismError, match="'agent' with arguments that differ"):
        run(ask_then_review(changed), True, execution_id=paused.execution_id, store=store)
    assert len(provider.chat_requests()) == 1


def test_a_tool_error_goes_back_to_the_model_and_replays_the_same(provider: FakeProvider) -> None:
    provider.add(
        Reply(text=None, tool_calls=[("divide", {"a": 1, "b": 0})]),
        Reply(text="cannot divide by zero"),
    )
    flow = ask_then_review(calculator(provider))
    store = MemoryStore()

    paused = run(flow, "1/0?", store=store)
    sent = provider.chat_requests()[1].messages[-1]
    assert sent["content"] == "error: ZeroDivisionError: float division by zero"
    done = run(flow, "ok", execution_id=paused.execution_id, store=store)
    assert done.has_succeeded
    # Replay rebuilt the same conversation from the recorded failure: the turn's identity
    # (which digests the conversation) matched, and nothing was sent.
    assert len(provider.chat_requests()) == 2


def test_unknown_tools_and_bad_arguments_are_answered_to_the_model(
    provider: FakeProvider,
) -> None:
    provider.add(
        Reply(
            text=None,
            tool_calls=[("mul", {"a": 1}), ("add", {"a": "x", "b": 1}), ("add", {"a": 1})],
        ),
        Reply(text="sorry"),
    )

    @workflow
    async def confused(ctx: ExecutionContext[str]):
        return (await calculator(provider).run(ctx.input)).output

    assert run(confused, "?").output == "sorry"
    answers = [m["content"] for m in provider.chat_requests()[1].messages if m["role"] == "tool"]
    assert answers[0] == "error: there is no tool 'mul'; the tools: add, divide"
    assert answers[1].startswith("error: invalid arguments for 'add': a: Input should be")
    assert answers[2] == "error: invalid arguments for 'add': b: Field required"


def test_one_turns_tool_calls_run_concurrently(provider: FakeProvider) -> None:
    both = asyncio.Event()
    arrived: list[str] = []

    @task
    async def meet(who: str) -> str:
        """Wait for the other caller."""
        arrived.append(who)
        if len(arrived) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 10)  # only returns if both run at once
        return f"{who} met"

    provider.add(
        Reply(text=None, tool_calls=[("meet", {"who": "ann"}), ("meet", {"who": "bob"})]),
        Reply(text="done"),
    )
    agent = Agent("openai/fake", tools=[meet], api_base=provider.openai_base)

    @workflow
    async def meeting(ctx: ExecutionContext[str]):
        return (await agent.run(ctx.input)).messages

    messages = run(meeting, "meet").output
    assert [m["content"] for m in messages if m["role"] == "tool"] == ["ann met", "bob met"]


def test_the_turn_digest_follows_the_conversation(provider: FakeProvider) -> None:
    """Two runs with different prompts get different turn identities; the same prompt twice
    in one execution gets the same digest and an occurrence number."""
    agent = Agent("openai/fake", api_base=provider.openai_base)

    @workflow
    async def twice(ctx: ExecutionContext[None]):
        a = await agent.run("same")
        b = await agent.run("same")
        c = await agent.run("other")
        return [a.output, b.output, c.output]

    ctx = run(twice)
    assert ctx.output == ["ok", "ok", "ok"]
    turns = [e for e in ctx.events if e.name == "agent.turn" and e.type.value == "TASK_STARTED"]
    digests = [e.value[0]["context"] for e in turns]
    assert digests[0] == digests[1] != digests[2]
    assert turns[0].source_id != turns[1].source_id
    assert json.loads(json.dumps(turns[0].value)) == turns[0].value  # plain JSON
