"""Model call failures: Flux retries what is worth retrying (429 after its Retry-After, 5xx, a
cut stream) and fails at once with a clear error on what is not (401, 400, a context window,
a missing key); litellm's own retries are off, so the fake counts every attempt."""

from __future__ import annotations

import pytest
from flux import ExecutionContext, workflow
from flux.testing import MemoryStore, VirtualClock, run
from flux_agents import (
    Agent,
    ContextWindowError,
    MissingApiKeyError,
    ModelAuthenticationError,
    ModelRateLimitError,
    ModelUnavailableError,
)

from tests.agents.fake_provider import FakeProvider, Reply


def flow_of(agent: Agent):
    @workflow.with_options(name="ask")
    async def ask(ctx: ExecutionContext[str]):
        return (await agent.run(ctx.input)).output

    return ask


def retry_events(ctx) -> list[tuple[str, object]]:
    return [
        (e.type.value, e.value)
        for e in ctx.events
        if e.name == "agent.turn" and e.type.value.startswith("TASK_RETRY")
    ]


def test_a_rate_limit_is_retried_by_flux_after_its_retry_after(provider: FakeProvider) -> None:
    provider.add(Reply(status=429, headers={"Retry-After": "7"}), Reply(text="at last"))
    agent = Agent("openai/fake", api_base=provider.openai_base, retry_delay=0.5)
    clock = VirtualClock()

    ctx = run(flow_of(agent), "hi", clock=clock)

    assert ctx.output == "at last"
    assert len(provider.chat_requests()) == 2
    assert clock.slept == [7.0]  # the provider's Retry-After, longer than retry_delay
    kinds = [k for k, _ in retry_events(ctx)]
    assert kinds == ["TASK_RETRY_STARTED", "TASK_RETRY_COMPLETED"]
    failed = next(e for e in ctx.events if e.type.value == "TASK_RETRY_STARTED")
    assert failed.value["delay"] == 7.0


def test_server_errors_are_retried_until_the_attempts_run_out(provider: FakeProvider) -> None:
    provider.add(*(Reply(status=500, error="upstream broke") for _ in range(3)))
    agent = Agent("openai/fake", api_base=provider.openai_base, retry_max_attempts=2,
                  retry_delay=0)  # fmt: skip

    ctx = run(flow_of(agent), "hi", clock=VirtualClock())

    assert ctx.has_failed
    error = ctx.output
    assert isinstance(error, ModelUnavailableError) and error.retryable
    assert "model 'openai/fake' (openai) failed (HTTP 500): " in str(error)
    assert "upstream broke" in str(error)
    assert len(provider.chat_requests()) == 3  # one attempt, two retries: no hidden ones


def test_an_authentication_error_is_not_retried(provider: FakeProvider) -> None:
    provider.add(Reply(status=401, error="Incorrect API key provided"))
    agent = Agent("openai/fake", api_base=provider.openai_base, retry_max_attempts=3)

    ctx = run(flow_of(agent), "hi")

    assert ctx.has_failed
    error = ctx.output
    assert isinstance(error, ModelAuthenticationError) and not error.retryable
    assert error.provider == "openai" and error.model == "openai/fake"
    assert error.status_code == 401
    assert str(error).startswith("model 'openai/fake' (openai) refused the credentials (HTTP 401)")
    assert len(provider.chat_requests()) == 1
    assert retry_events(ctx) == []
    assert error.to_dict()["code"] == "model_authentication"


def test_a_context_window_error_is_not_retried(provider: FakeProvider) -> None:
    provider.add(
        Reply(status=400, error="This model's maximum context length is 8192 tokens"),
    )
    agent = Agent("openai/fake", api_base=provider.openai_base)

    ctx = run(flow_of(agent), "a very long story")

    assert isinstance(ctx.output, ContextWindowError)
    assert "does not fit its context window" in str(ctx.output)
    assert len(provider.chat_requests()) == 1


def test_a_stream_cut_mid_body_is_retried(provider: FakeProvider) -> None:
    provider.add(Reply(text="this will be cut", cut=True), Reply(text="whole answer"))
    agent = Agent("openai/fake", api_base=provider.openai_base, stream=True, retry_delay=0)

    ctx = run(flow_of(agent), "hi", clock=VirtualClock())

    assert ctx.output == "whole answer"
    assert [r.body.get("stream") for r in provider.chat_requests()] == [True, True]
    assert [k for k, _ in retry_events(ctx)] == ["TASK_RETRY_STARTED", "TASK_RETRY_COMPLETED"]


def test_a_missing_api_key_is_found_before_any_request(provider: FakeProvider) -> None:
    agent = Agent("openai/gpt-4o-mini")  # hosted: no api_base, no OPENAI_API_KEY

    ctx = run(flow_of(agent), "hi")

    assert isinstance(ctx.output, MissingApiKeyError)
    message = str(ctx.output)
    assert "model 'openai/gpt-4o-mini' (openai) needs an API key" in message
    assert "OPENAI_API_KEY" in message and "api_key_secret" in message
    assert provider.chat_requests() == []


def test_the_api_key_comes_from_a_flux_secret(provider: FakeProvider) -> None:
    agent = Agent("openai/fake", api_base=provider.openai_base, api_key_secret="LLM_KEY")
    store = MemoryStore(secrets={"LLM_KEY": "sk-from-secret"})

    assert run(flow_of(agent), "hi", store=store).output == "ok"

    assert provider.chat_requests()[0].headers["authorization"] == "Bearer sk-from-secret"
    turn = next(e for e in store.events(next(iter(store.executions))) if e.name == "agent.turn")
    assert "sk-from-secret" not in repr(turn.value)


def test_the_address_may_come_from_openai_base_url(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", provider.openai_base)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    agent = Agent("openai/gpt-4o-mini")

    assert run(flow_of(agent), "hi").output == "ok"

    request = provider.chat_requests()[0]
    assert request.headers["authorization"] == "Bearer sk-env"
    assert request.body["model"] == "gpt-4o-mini"


def test_recorded_model_errors_survive_a_round_trip() -> None:
    import pickle

    error = ModelRateLimitError("slow down", provider="openai", model="openai/x", retry_after=3)
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is ModelRateLimitError
    assert back.retry_after == 3.0 and back.retryable and back.provider == "openai"
