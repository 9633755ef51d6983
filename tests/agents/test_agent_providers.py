"""Providers and the original project's API: Ollama's chat endpoint with native tools, the
`agent(...)` task with its provider prefixes, and an `import flux_agents` that loads no litellm."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from flux import ExecutionContext, task, workflow
from flux.testing import run
from flux_agents import Agent, agent
from flux_agents.compat import litellm_model
from pydantic import BaseModel

from tests.agents.fake_provider import FakeProvider, Reply


@task
async def weather(city: str) -> dict:
    """Today's weather in a city."""
    return {"city": city, "sky": "clear"}


class Forecast(BaseModel):
    city: str
    sky: str


def test_ollama_chat_gets_native_tools(provider: FakeProvider) -> None:
    provider.add(
        Reply(text="", tool_calls=[("weather", {"city": "Lisbon"})], usage=(20, 6)),
        Reply(text="Clear in Lisbon.", usage=(40, 5)),
    )
    local = Agent("ollama_chat/llama3.1", tools=[weather], api_base=provider.url)

    @workflow
    async def ask(ctx: ExecutionContext[str]):
        return await local.run(ctx.input)

    result = run(ask, "Weather in Lisbon?").output

    assert result.output == "Clear in Lisbon."
    assert result.usage.total_tokens == 71
    first, second = provider.chat_requests()
    assert first.path == "/api/chat"
    assert first.body["tools"][0]["function"]["name"] == "weather"
    tool_message = second.body["messages"][-1]
    assert tool_message["role"] == "tool"
    assert json.loads(tool_message["content"]) == {"city": "Lisbon", "sky": "clear"}


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("ollama/llama3", "ollama_chat/llama3"),
        ("google/gemini-1.5-flash", "gemini/gemini-1.5-flash"),
        ("openai/gpt-4o-mini", "openai/gpt-4o-mini"),
        ("anthropic/claude-3-5-haiku-latest", "anthropic/claude-3-5-haiku-latest"),
        ("ollama_chat/qwen2.5", "ollama_chat/qwen2.5"),
        ("gemini/gemini-2.0-flash", "gemini/gemini-2.0-flash"),
    ],
)
def test_the_original_prefixes_map_to_litellms(written: str, sent: str) -> None:
    assert litellm_model(written) == sent


def test_agent_makes_a_task_that_answers_with_the_response_format(
    provider: FakeProvider,
) -> None:
    provider.add(
        Reply(text=None, tool_calls=[("weather", {"city": "Oslo"})]),
        Reply(text='{"city": "Oslo", "sky": "clear"}'),
    )

    @workflow
    async def forecast(ctx: ExecutionContext[str]):
        forecaster = await agent(
            "You forecast.",
            model="ollama/llama3",
            tools=[weather],
            response_format=Forecast,
            name="forecaster",
            api_base=provider.url,
        )
        return await forecaster(ctx.input)

    ctx = run(forecast, "Oslo?")

    assert ctx.output == Forecast(city="Oslo", sky="clear")
    assert provider.chat_requests()[0].path == "/api/chat"  # ollama/ went to ollama_chat/
    assert [e.name for e in ctx.events if e.type.value == "TASK_STARTED"] == [
        "forecaster",
        "forecaster.turn",
        "weather",
        "forecaster.turn",
    ]


@pytest.mark.parametrize(
    ("model", "variable"),
    [
        ("anthropic/claude-3-5-haiku-latest", "ANTHROPIC_API_KEY"),
        ("gemini/gemini-1.5-flash", "GEMINI_API_KEY"),
    ],
)
def test_hosted_providers_without_a_key_fail_before_calling(model: str, variable: str) -> None:
    hosted = Agent(model)

    @workflow
    async def ask(ctx: ExecutionContext[str]):
        return await hosted.run(ctx.input)

    ctx = run(ask, "hi")
    assert ctx.has_failed and type(ctx.output).__name__ == "MissingApiKeyError"
    assert variable in str(ctx.output)


def test_import_flux_agents_loads_no_litellm() -> None:
    code = (
        "import json, os, sys\n"
        "os.environ.pop('LITELLM_LOCAL_MODEL_COST_MAP', None)\n"
        "import flux_agents\n"
        "print(json.dumps([sorted(m for m in sys.modules if m.split('.')[0] in "
        "('litellm', 'openai', 'tiktoken', 'tokenizers')), "
        "os.environ.get('LITELLM_LOCAL_MODEL_COST_MAP')]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded, cost_map = json.loads(out)
    assert loaded == []
    assert cost_map == "True"  # set for users too, so offline workers do not stall


def test_the_cost_map_default_can_be_turned_off() -> None:
    code = (
        "import os\nos.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'False'\n"
        "import flux_agents\nprint(os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    ("model", "variable"),
    [
        ("anthropic/claude-3-5-haiku-latest", "ANTHROPIC_API_KEY"),
        ("gemini/gemini-1.5-flash", "GEMINI_API_KEY"),
    ],
)
def test_anthropic_and_gemini_through_litellms_mock_response(
    model: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # litellm answers itself (mock_response): nothing leaves the machine.
    monkeypatch.setenv(variable, "test-key")
    pricing = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    hosted = Agent(model, settings={"mock_response": "Hello from a mock"}, pricing=pricing)

    @workflow
    async def ask(ctx: ExecutionContext[str]):
        return await hosted.run(ctx.input)

    result = run(ask, "hi").output
    assert result.output == "Hello from a mock"
    usage = result.usage
    assert usage.total_tokens > 0
    assert result.cost == pytest.approx(usage.prompt_tokens * 1e-6 + usage.completion_tokens * 2e-6)
