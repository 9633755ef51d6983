"""What an agent's run returns: :class:`AgentResult`, with its :class:`Usage`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["AgentResult", "Usage"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens spent, as the provider counted them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, recorded: dict[str, Any]) -> Usage:
        """From a recorded turn's ``usage``."""
        return cls(
            int(recorded.get("prompt_tokens", 0)),
            int(recorded.get("completion_tokens", 0)),
            int(recorded.get("total_tokens", 0)),
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )


@dataclass(frozen=True, slots=True)
class AgentResult(Generic[T]):
    """The outcome of ``await agent.run(prompt)``.

    ``output`` is the final answer: text, or an instance of the agent's ``output_type``.
    ``messages`` is the conversation as the model last saw it (system prompt, the working
    memory's earlier turns, the prompt, and every turn and tool result of this run), in the
    OpenAI chat format. ``cost`` is in USD, ``None`` when the model's price is unknown (give
    the agent ``pricing=``).
    """

    output: T
    messages: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    turns: int = 0
    history: int = 0
    """How many of ``messages`` come before this run's prompt (system prompt, memory)."""

    @property
    def new_messages(self) -> list[dict[str, Any]]:
        """This run's own messages: the prompt, its turns and tool results."""
        return self.messages[self.history :]
