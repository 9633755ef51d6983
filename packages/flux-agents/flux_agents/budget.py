"""A cap on what one agent run may spend: :class:`Budget`.

Before each model turn the run estimates what the turn will cost at least, from recorded
figures only (the previous turn's usage and cost, the length of the messages added since),
so the check gives the same answer on every replay. A turn whose estimate would pass the cap
is not sent: the run fails with :class:`~flux_agents.errors.BudgetExceededError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flux.errors import UsageError

from flux_agents.errors import BudgetExceededError
from flux_agents.result import Usage

__all__ = ["Budget"]

CHARS_PER_TOKEN = 4
"""The estimate of a message's tokens before the provider counted them: a rough but
deterministic rule, with no tokenizer to download."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """``tokens``: total tokens (prompt + completion) per run; ``cost``: USD per run."""

    tokens: int | None = None
    cost: float | None = None

    def __post_init__(self) -> None:
        if self.tokens is None and self.cost is None:
            raise UsageError("Budget(): give tokens=..., cost=... or both")
        if self.tokens is not None and (
            isinstance(self.tokens, bool) or not isinstance(self.tokens, int) or self.tokens < 1
        ):
            raise UsageError(f"Budget(tokens={self.tokens!r}): give a whole number >= 1")
        if self.cost is not None and (
            isinstance(self.cost, bool) or not isinstance(self.cost, int | float) or self.cost <= 0
        ):
            raise UsageError(f"Budget(cost={self.cost!r}): give a number of USD > 0")

    def check(
        self,
        *,
        agent: str,
        spent: Usage,
        cost: float | None,
        last: dict[str, Any] | None,
        added: list[dict[str, Any]],
        turns: int,
    ) -> None:
        """Raise :class:`BudgetExceededError` if the next turn would pass the cap.

        ``last`` is the previous recorded turn (None before the first), ``added`` the
        messages the next turn sends that the previous one did not.
        """
        new_tokens = _estimate(added)
        if self.tokens is not None:
            floor = new_tokens + (last["usage"]["total_tokens"] if last else 0)
            if spent.total_tokens + floor > self.tokens:
                raise BudgetExceededError(
                    f"agent {agent!r}: the budget of {self.tokens} tokens would be exceeded: "
                    f"{spent.total_tokens} spent in {turns} turn(s), and the next turn sends "
                    f"at least {floor}; it was not sent. Raise Budget(tokens=...) or shorten "
                    "the task",
                    limit="tokens",
                    budget=self.tokens,
                    spent=spent.total_tokens,
                    next_at_least=floor,
                )
        if self.cost is not None:
            if cost is None:
                raise BudgetExceededError(
                    f"agent {agent!r}: the budget caps cost at {self.cost} USD, but the "
                    "model's price is unknown; give the agent pricing={'input_cost_per_token': "
                    "..., 'output_cost_per_token': ...}",
                    limit="cost",
                    budget=self.cost,
                    spent=None,
                )
            floor_cost = (last.get("cost") or 0.0) if last else 0.0
            if cost + floor_cost > self.cost:
                raise BudgetExceededError(
                    f"agent {agent!r}: the budget of {self.cost} USD would be exceeded: "
                    f"{cost:.6f} USD spent in {turns} turn(s), and the next turn costs about "
                    f"{floor_cost:.6f}; it was not sent. Raise Budget(cost=...)",
                    limit="cost",
                    budget=self.cost,
                    spent=cost,
                    next_at_least=floor_cost,
                )


def _estimate(messages: list[dict[str, Any]]) -> int:
    text = json.dumps(messages, ensure_ascii=False, default=str)
    return len(text) // CHARS_PER_TOKEN
