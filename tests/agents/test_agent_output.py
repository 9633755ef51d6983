"""Structured output: the provider's schema mode where litellm says the model has one, the schema
in the prompt otherwise; one corrective turn on an invalid answer, then a clear error."""

from __future__ import annotations

from flux import ExecutionContext, task, workflow
from flux.testing import MemoryStore, run
from flux_agents import Agent, OutputValidationError
from pydantic import BaseModel

from tests.agents.fake_provider import FakeProvider, Reply


class City(BaseModel):
    name: str
    population: int


@task
async def census(city: str) -> int:
    """The population of a city."""
    return 545_000


def flow_of(agent: Agent):
    @workflow.with_options(name="cities")
    async def cities(ctx: ExecutionContext[str]):
        return (await agent.run(ctx.input)).output

    return cities


def test_a_model_with_a_schema_mode_gets_the_schema_as_response_format(
    provider: FakeProvider,
) -> None:
    provider.add(Reply(text='{"name": "Lisbon", "population": 545000}'))
    # gpt-4o-mini supports json_schema in litellm's model list; the fake answers for it
    agent = Agent("openai/gpt-4o-mini", output_type=City, api_base=provider.openai_base)

    ctx = run(flow_of(agent), "Tell me about Lisbon")

    assert ctx.output == City(name="Lisbon", population=545000)
    body = provider.chat_requests()[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "City"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert "JSON schema" not in str(body["messages"])  # not in the prompt as well


def test_other_models_get_the_schema_in_the_system_prompt(provider: FakeProvider) -> None:
    provider.add(Reply(text='```json\n{"name": "Porto", "population": 232000}\n```'))
    agent = Agent("openai/fake", system="You know cities.", output_type=City,
                  api_base=provider.openai_base)  # fmt: skip

    ctx = run(flow_of(agent), "Porto?")

    assert ctx.output == City(name="Porto", population=232000)  # the code fence is dropped
    body = provider.chat_requests()[0].body
    assert "response_format" not in body
    system = body["messages"][0]["content"]
    assert system.startswith("You know cities.\n\nWhen you give your final answer")
    assert '"population":{"title":"Population","type":"integer"}' in system


def test_structured_output_after_tool_calls(provider: FakeProvider) -> None:
    provider.add(
        Reply(text=None, tool_calls=[("census", {"city": "Lisbon"})]),
        Reply(text='{"name": "Lisbon", "population": 545000}'),
    )
    agent = Agent("openai/gpt-4o-mini", tools=[census], output_type=City,
                  api_base=provider.openai_base)  # fmt: skip

    ctx = run(flow_of(agent), "Lisbon?")

    assert ctx.output.population == 545000
    first = provider.chat_requests()[0].body
    assert first["tools"][0]["function"]["name"] == "census" and "response_format" in first


def test_an_invalid_answer_gets_one_corrective_turn(provider: FakeProvider) -> None:
    provider.add(
        Reply(text='{"name": "Faro", "population": "many"}'),
        Reply(text='{"name": "Faro", "population": 64000}'),
    )
    agent = Agent("openai/fake", output_type=City, api_base=provider.openai_base)
    store = MemoryStore()

    ctx = run(flow_of(agent), "Faro?", store=store)

    assert ctx.output == City(name="Faro", population=64000)
    correction = provider.chat_requests()[1].messages[-1]
    assert correction["role"] == "user"
    assert "population: Input should be a valid integer" in correction["content"]


def test_a_second_invalid_answer_fails_the_run(provider: FakeProvider) -> None:
    provider.add(Reply(text="Faro is lovely."), Reply(text='{"name": "Faro"}'))
    agent = Agent("openai/fake", name="geo", output_type=City, api_base=provider.openai_base)

    ctx = run(flow_of(agent), "Faro?")

    assert ctx.has_failed
    error = ctx.output
    assert isinstance(error, OutputValidationError)
    assert str(error) == (
        "agent 'geo': the answer does not match City even after a correction: "
        "population: Field required"
    )
    assert len(provider.chat_requests()) == 2
