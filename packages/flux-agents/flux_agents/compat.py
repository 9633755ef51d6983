"""The original flux-core's way to make an agent: ``my_agent = await agent(system_prompt,
model=..., tools=[...], response_format=Model)`` gives a Flux task, called as
``await my_agent(instruction)``, that returns the answer (text, or a ``Model``).

Its model strings use that project's provider prefixes, mapped to litellm's here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flux.errors import UsageError
from flux.task import task

from flux_agents.agent import Agent

__all__ = ["PROVIDER_PREFIXES", "AgentTask", "agent", "litellm_model"]

PROVIDER_PREFIXES = {
    # litellm's ollama/ emulates tools in the prompt; its ollama_chat/ sends them
    "ollama/": "ollama_chat/",
    "google/": "gemini/",
    "openai/": "openai/",
    "anthropic/": "anthropic/",
}


def litellm_model(model: str) -> str:
    """litellm's model string for one written with the original project's prefixes
    (``ollama/llama3`` -> ``ollama_chat/llama3``, ``google/gemini-1.5-pro`` ->
    ``gemini/gemini-1.5-pro``); other strings unchanged."""
    for prefix, mapped in PROVIDER_PREFIXES.items():
        if model.startswith(prefix):
            return mapped + model[len(prefix) :]
    return model


class AgentTask(task[Any, Any]):
    """A Flux task that runs an :class:`Agent` on its one argument and returns the output."""

    def __init__(self, wrapped: Agent[Any]) -> None:
        if wrapped.memory is not None:
            # The task records the answer, not the run the memory would be rebuilt from.
            raise UsageError(
                "agent(..., memory=...): an agent task keeps no working memory; make an "
                "Agent(..., memory=...) and call its run() instead"
            )
        self.agent = wrapped

        async def answer(instruction: Any, fingerprint: str) -> Any:
            return (await wrapped._body(instruction, fingerprint)).output

        super().__init__(answer, name=wrapped.name)

    def __call__(self, instruction: Any) -> Any:  # type: ignore[override]  # one argument
        return self._invoke((instruction, self.agent.fingerprint), {})


async def agent(
    system_prompt: str,
    *,
    model: str,
    tools: Sequence[Any] = (),
    response_format: Any = None,
    name: str = "agent",
    **options: Any,
) -> AgentTask:
    """Make an agent task in the original project's style.

    ``model`` takes that project's prefixes (``ollama/``, ``openai/``, ``anthropic/``,
    ``google/``) or litellm's; ``response_format`` is the pydantic model of the answer;
    ``options`` are :class:`Agent`'s other options.
    """
    return AgentTask(
        Agent(
            litellm_model(model),
            name=name,
            system=system_prompt,
            tools=tools,
            output_type=response_format,
            **options,
        )
    )
