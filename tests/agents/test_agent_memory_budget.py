"""Working memory within an execution (rebuilt by replay, trimmed by recorded usage) and
budgets (the turn that would pass the cap is not sent)."""

from __future__ import annotations

import pytest
from flux import ExecutionContext, UsageError, workflow
from flux.tasks import pause
from flux.testing import MemoryStore, run
from flux_agents import Agent, Budget, BudgetExceededError, WorkingMemory

from tests.agents.fake_provider import FakeProvider, Reply


def conversation(provider: FakeProvider, index: int) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in provider.chat_requests()[index].messages]


def test_each_run_starts_from_the_earlier_exchanges(provider: FakeProvider) -> None:
    provider.add(Reply(text="Hi Ana."), Reply(text="Your name is Ana."))
    chat = Agent("openai/fake", system="Be kind.", memory=WorkingMemory(),
                 api_base=provider.openai_base)  # fmt: skip

    @workflow
    async def talk(ctx: ExecutionContext[None]):
        first = await chat.run("I am Ana.")
        second = await chat.run("What is my name?")
        return [first.output, second.output, second.history, len(second.new_messages)]

    assert run(talk).output == ["Hi Ana.", "Your name is Ana.", 3, 2]
    assert conversation(provider, 1) == [
        ("system", "Be kind."),
        ("user", "I am Ana."),
        ("assistant", "Hi Ana."),
        ("user", "What is my name?"),
    ]


def test_memory_is_rebuilt_by_replay_and_trimmed_the_same(provider: FakeProvider) -> None:
    # Each exchange: 40 completion tokens + its prompt's estimate (about 8): the budget of
    # 100 tokens keeps the newest two.
    provider.default = Reply(text="noted", usage=(10, 40))
    chat = Agent("openai/fake", memory=WorkingMemory(max_turns=5, max_tokens=100),
                 api_base=provider.openai_base)  # fmt: skip

    @workflow
    async def notes(ctx: ExecutionContext[None]):
        for word in ("one", "two", "three"):
            await chat.run(word)
        await pause("more?")
        return (await chat.run("four")).messages

    store = MemoryStore()
    paused = run(notes, store=store)
    assert [m[1] for m in conversation(provider, 2) if m[0] == "user"] == ["one", "two", "three"]

    done = run(notes, None, execution_id=paused.execution_id, store=store)

    assert len(provider.chat_requests()) == 4  # only the new run asked the model
    users = [m["content"] for m in done.output if m["role"] == "user"]
    assert users == ["two", "three", "four"]  # "one" trimmed by the token budget


def test_max_turns_of_memory_keeps_the_newest(provider: FakeProvider) -> None:
    chat = Agent("openai/fake", memory=WorkingMemory(max_turns=1), api_base=provider.openai_base)

    @workflow
    async def three(ctx: ExecutionContext[None]):
        for word in ("a", "b", "c"):
            await chat.run(word)

    run(three)
    assert conversation(provider, 2) == [("user", "b"), ("assistant", "ok"), ("user", "c")]


def test_a_token_budget_stops_the_turn_that_would_pass_it(provider: FakeProvider) -> None:
    from flux import task

    @task
    async def fetch(page: int) -> str:
        """Fetch a page."""
        return "text " * 50

    provider.add(Reply(text=None, tool_calls=[("fetch", {"page": 1})], usage=(120, 30)))
    agent = Agent("openai/fake", name="reader", tools=[fetch], budget=Budget(tokens=200),
                  api_base=provider.openai_base)  # fmt: skip

    @workflow
    async def read(ctx: ExecutionContext[str]):
        return await agent.run(ctx.input)

    ctx = run(read, "read page 1")

    assert ctx.has_failed
    error = ctx.output
    assert isinstance(error, BudgetExceededError)
    assert len(provider.chat_requests()) == 1  # the second turn was not sent
    assert error.details["limit"] == "tokens" and error.details["spent"] == 150
    assert str(error).startswith(
        "agent 'reader': the budget of 200 tokens would be exceeded: 150 spent in 1 turn(s)"
    )


def test_a_cost_budget_with_pricing(provider: FakeProvider) -> None:
    from flux import task

    @task
    async def again() -> str:
        """Ask again."""
        return "again"

    pricing = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
    # 0.1 + 0.1 = 0.2 USD a turn, and the model never stops calling the tool
    provider.default = Reply(text=None, tool_calls=[("again", {})], usage=(100, 50))
    agent = Agent("openai/fake", tools=[again], pricing=pricing, budget=Budget(cost=0.5),
                  api_base=provider.openai_base)  # fmt: skip

    @workflow
    async def spend(ctx: ExecutionContext[None]):
        return await agent.run("go")

    error = run(spend).output

    assert isinstance(error, BudgetExceededError)
    assert len(provider.chat_requests()) == 2  # a third turn would have made it 0.6
    assert error.details["limit"] == "cost"
    assert error.details["spent"] == pytest.approx(0.4)


def test_a_cost_budget_needs_a_known_price(provider: FakeProvider) -> None:
    from flux import task

    @task
    async def noop() -> str:
        """Nothing."""
        return ""

    provider.add(Reply(text=None, tool_calls=[("noop", {})]))
    agent = Agent("openai/fake", tools=[noop], budget=Budget(cost=1.0),
                  api_base=provider.openai_base)  # fmt: skip

    @workflow
    async def spend(ctx: ExecutionContext[None]):
        return await agent.run("go")

    ctx = run(spend)
    assert isinstance(ctx.output, BudgetExceededError)
    assert "the model's price is unknown; give the agent pricing=" in str(ctx.output)


def test_bad_budgets_and_memories_are_refused() -> None:
    with pytest.raises(UsageError, match=r"give tokens=\.\.\., cost=\.\.\. or both"):
        Budget()
    with pytest.raises(UsageError, match=r"Budget\(tokens=0\)"):
        Budget(tokens=0)
    with pytest.raises(UsageError, match=r"WorkingMemory\(max_turns=0\)"):
        WorkingMemory(max_turns=0)
    with pytest.raises(UsageError, match=r"give a flux_agents\.Budget"):
        Agent("openai/x", budget=100)  # type: ignore[arg-type]
