"""The :class:`Agent`: a model, a system prompt and tools, run durably inside a workflow."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from flux.errors import UsageError
from flux.task import task

from flux_agents.budget import Budget
from flux_agents.long_term import LongTermMemory
from flux_agents.memory import WorkingMemory, exchange_of
from flux_agents.output import OutputSpec
from flux_agents.result import AgentResult
from flux_agents.streaming import TextStream
from flux_agents.tools import Tool

__all__ = ["Agent"]

T = TypeVar("T")


class Agent(Generic[T]):
    """An LLM agent whose every model turn and tool call is recorded by Flux.

    ``model`` is a litellm model string, taken as it is: ``openai/gpt-4o-mini``,
    ``anthropic/claude-3-5-sonnet-latest``, ``gemini/gemini-1.5-flash``,
    ``ollama_chat/llama3.1``, or ``openai/<name>`` with ``api_base`` (or ``OPENAI_BASE_URL``)
    for any OpenAI-compatible server. Inside a workflow, ``result = await agent.run(prompt)``
    returns an :class:`AgentResult`; a replay or resume returns the recorded turns and calls
    no model for a turn it already has.

    Options (all keyword):

    - ``name``: names the run's task (``name``) and its model turns (``name.turn``).
    - ``system``: the system prompt.
    - ``tools``: Flux ``@task``s the model may call; their retries, timeouts, fallbacks and
      cache apply. ``max_parallel_tools`` bounds how many of one turn's calls run at once.
    - ``output_type``: a pydantic model the final answer is validated into.
    - ``memory``: a :class:`WorkingMemory`: each run starts from this agent's earlier
      exchanges in the same execution.
    - ``long_term``: a :class:`LongTermMemory`: facts that outlive the execution, which the
      model reads and writes through three tools.
    - ``approve``: tools (or their names) that pause for a person's approval before each call.
    - ``budget``: a :class:`Budget` capping tokens and/or cost per run.
    - ``max_turns``: model turns per run before :class:`~flux_agents.errors.MaxTurnsError`.
    - ``stream``: stream each reply, published as progress a few tokens at a time (see
      :mod:`flux_agents.streaming` for what an agent publishes).
    - ``api_base``: the provider's address; ``api_key_secret``: the name of a Flux secret
      holding the API key (otherwise the provider's usual environment variable).
    - ``settings``: more litellm arguments for every call (``temperature``, ``max_tokens``...).
    - ``pricing``: ``{"input_cost_per_token": ..., "output_cost_per_token": ...}`` for models
      litellm has no price for.
    - ``retry_max_attempts``, ``retry_delay``, ``retry_backoff``, ``timeout``: the task
      options of each model turn (litellm's own retries are off).

    Raises:
        UsageError: an option has the wrong type or value.
    """

    def __init__(
        self,
        model: str,
        *,
        name: str = "agent",
        system: str = "",
        tools: Sequence[Any] = (),
        output_type: type[T] | None = None,
        memory: WorkingMemory | None = None,
        long_term: LongTermMemory | None = None,
        stream: bool = False,
        max_turns: int = 10,
        approve: Sequence[Any] = (),
        budget: Budget | None = None,
        api_base: str | None = None,
        api_key_secret: str | None = None,
        settings: dict[str, Any] | None = None,
        pricing: dict[str, float] | None = None,
        retry_max_attempts: int = 3,
        retry_delay: float = 1.0,
        retry_backoff: float = 2.0,
        timeout: float = 120.0,
        max_parallel_tools: int = 4,
    ) -> None:
        if not isinstance(model, str) or "/" not in model:
            raise UsageError(
                f"Agent(model={model!r}): give a litellm model string 'provider/model', e.g. "
                "'openai/gpt-4o-mini' or 'ollama_chat/llama3.1'"
            )
        if not isinstance(name, str) or not name or ":" in name:
            raise UsageError(f"Agent(name={name!r}): give a non-empty name without ':'")
        if not isinstance(system, str):
            raise UsageError(f"Agent(system={system!r}): the system prompt must be text")
        for label, value, low in (
            ("max_turns", max_turns, 1),
            ("max_parallel_tools", max_parallel_tools, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UsageError(f"Agent({label}={value!r}): give a whole number >= {low}")
        if memory is not None and not isinstance(memory, WorkingMemory):
            raise UsageError(f"Agent(memory={memory!r}): give a flux_agents.WorkingMemory")
        if long_term is not None and not isinstance(long_term, LongTermMemory):
            raise UsageError(f"Agent(long_term={long_term!r}): give a flux_agents.LongTermMemory")
        if budget is not None and not isinstance(budget, Budget):
            raise UsageError(f"Agent(budget={budget!r}): give a flux_agents.Budget")
        if api_key_secret is not None and (
            not isinstance(api_key_secret, str) or not api_key_secret
        ):
            raise UsageError(f"Agent(api_key_secret={api_key_secret!r}): give a secret's name")
        self.model = model
        self.name = name
        self.system = system
        self.long_term = long_term
        self.tools: dict[str, Tool] = {}
        for value in [*tools, *(long_term.tools() if long_term is not None else ())]:
            tool = Tool.of(value)
            if tool.name in self.tools:
                raise UsageError(f"Agent(tools=...): two tools are named {tool.name!r}")
            self.tools[tool.name] = tool
        self.approve = frozenset(_tool_name(a) for a in approve)
        unknown = sorted(self.approve - set(self.tools))
        if unknown:
            raise UsageError(
                f"Agent(approve=...): {', '.join(map(repr, unknown))} is not among the tools"
            )
        self.output = OutputSpec(output_type) if output_type is not None else None
        self.memory = memory
        self.stream = bool(stream)
        self.max_turns = max_turns
        self.max_parallel_tools = max_parallel_tools
        self.budget = budget
        self.api_base = api_base
        self.api_key_secret = api_key_secret
        self.settings = dict(settings or {})
        self.pricing = dict(pricing) if pricing else None
        self.turn_task_name = f"{name}.turn"
        # Checked by building a task: the same validation and messages as @task's.
        task(_probe, name=self.turn_task_name, retry_max_attempts=retry_max_attempts,
             retry_delay=retry_delay, retry_backoff=retry_backoff, timeout=timeout)  # fmt: skip
        self.call_options: dict[str, Any] = {
            "retry_max_attempts": retry_max_attempts,
            "retry_delay": retry_delay,
            "retry_backoff": retry_backoff,
            "timeout": timeout,
            "secret_requests": [api_key_secret] if api_key_secret else [],
        }
        self.fingerprint = _fingerprint(self)
        self._task: task[Any, AgentResult[T]] = task(self._body, name=name)

    def __repr__(self) -> str:
        return f"<Agent {self.name!r} model={self.model!r}>"

    def __flux_identity__(self) -> str:
        return f"{self.name}:{self.fingerprint}"

    async def run(self, prompt: Any) -> AgentResult[T]:
        """Run the agent on ``prompt`` (text, or a list of OpenAI content parts) until the
        model gives a final answer.

        Raises:
            ModelCallError: a model call failed for good (after the turn's retries).
            OutputValidationError: the answer did not validate, even after a correction.
            BudgetExceededError: the next turn would pass the budget.
            MaxTurnsError: no final answer within ``max_turns``.
            NonDeterminismError: on replay, the system prompt, tools or output type differ
                from the ones the execution recorded.
        """
        result = await self._task(prompt, self.fingerprint)
        self.remember(result)
        return result

    def remember(self, result: AgentResult[Any]) -> None:
        """Keep a finished run in the working memory (also when replay returned it)."""
        if self.memory is not None:
            self.memory.remember(self.name, exchange_of(result))

    async def _body(self, prompt: Any, fingerprint: str) -> AgentResult[T]:
        from flux_agents._run import AgentRun

        return await AgentRun(self, fingerprint).run(prompt)

    async def send(
        self, messages: list[dict[str, Any]], secrets: dict[str, Any] | None, turn: int
    ) -> Any:
        """Call the model once with ``messages`` (the body of model turn ``turn``)."""
        from flux_agents._litellm import ModelCall, complete, litellm

        response_format = None
        if self.output is not None:
            if _native_schema(litellm(), self.model):
                response_format = self.output.type
            else:
                messages = self.output.with_instruction(messages)
        text = TextStream(self.name, turn) if self.stream else None
        call = ModelCall(
            model=self.model,
            messages=messages,
            tools=[t.schema() for t in self.tools.values()],
            response_format=response_format,
            api_base=self.api_base,
            api_key=(secrets or {}).get(self.api_key_secret) if self.api_key_secret else None,
            settings=self.settings,
            pricing=self.pricing,
            on_text=text.add if text is not None else None,
        )
        try:
            return await complete(call)
        finally:
            if text is not None:
                await text.flush()


async def _probe() -> None:
    """Stands in for a model turn while its options are checked."""


def _tool_name(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, task | Tool):
        return value.name
    raise UsageError(f"Agent(approve=[{value!r}]): give tools or their names")


def _native_schema(lib: Any, model: str) -> bool:
    try:
        return bool(lib.supports_response_schema(model))
    except Exception:  # a model litellm has no entry for: the schema goes in the prompt
        return False


def _fingerprint(agent: Agent[Any]) -> str:
    """What replay checks an in-flight run against: the system prompt, the tools and the
    output schema (not the model, which may change between attempts)."""
    shape = {
        "system": agent.system,
        "tools": [t.schema() for t in agent.tools.values()],
        "output": agent.output.schema if agent.output is not None else None,
    }
    text = json.dumps(shape, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
