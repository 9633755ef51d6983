"""Working memory: an agent's earlier exchanges within the same execution.

With ``Agent(memory=WorkingMemory(...))`` each ``run`` of that agent in an execution starts
from the exchanges of its earlier runs there (a prompt and everything up to its answer), the
newest ``max_turns`` of them, trimmed further while their tokens pass ``max_tokens``. The
exchanges are rebuilt as the workflow body replays, from recorded run results, and measured
by the usage the provider recorded, so every replay and every worker trims the same way and
no tokenizer is involved.

Runs of one agent are meant to follow each other. Runs in parallel branches each start from
the memory as it was when they started, and join it in the order they finish.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flux.context import run_state
from flux.errors import UsageError

from flux_agents.budget import CHARS_PER_TOKEN
from flux_agents.result import AgentResult

__all__ = ["Exchange", "WorkingMemory", "exchange_of"]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One earlier run as the memory keeps it: its messages from the prompt to the answer,
    and their size in tokens as recorded."""

    messages: list[dict[str, Any]]
    tokens: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkingMemory:
    """``max_turns``: earlier exchanges kept; ``max_tokens``: their token budget (None: no
    budget)."""

    max_turns: int = 20
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        for label, value in (("max_turns", self.max_turns), ("max_tokens", self.max_tokens)):
            if value is None and label == "max_tokens":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"WorkingMemory({label}={value!r}): give a whole number >= 1")

    def recall(self, agent: str) -> list[dict[str, Any]]:
        """The messages of the kept exchanges, oldest first (none outside a workflow)."""
        kept: list[Exchange] = []
        tokens = 0
        for exchange in reversed(self._exchanges(agent)):
            if len(kept) >= self.max_turns:
                break
            if self.max_tokens is not None and tokens + exchange.tokens > self.max_tokens:
                break
            kept.append(exchange)
            tokens += exchange.tokens
        return [m for exchange in reversed(kept) for m in exchange.messages]

    def remember(self, agent: str, exchange: Exchange) -> None:
        self._exchanges(agent).append(exchange)

    def _exchanges(self, agent: str) -> list[Exchange]:
        state = run_state()
        if state is None:
            return []
        found: list[Exchange] = state.setdefault(f"flux_agents.memory:{agent}", [])
        return found


def exchange_of(result: AgentResult[Any]) -> Exchange:
    """The exchange of a finished run: its own messages (from the prompt on), sized by the
    completion tokens the provider recorded plus an estimate of the rest (the prompt, tool
    results, corrections)."""
    own = result.new_messages
    rest = [m for m in own if m.get("role") != "assistant"]
    estimate = len(json.dumps(rest, ensure_ascii=False, default=str)) // CHARS_PER_TOKEN
    return Exchange(own, result.usage.completion_tokens + estimate)
