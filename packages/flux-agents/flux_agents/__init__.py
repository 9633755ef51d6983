"""Flux agents: durable LLM agents on litellm.

```python
from flux import workflow
from flux_agents import Agent

researcher = Agent("openai/gpt-4o-mini", system="Answer briefly.", tools=[search])

@workflow
async def ask(ctx):
    result = await researcher.run(ctx.input)
    return result.output
```

Every model turn and tool call is a recorded task: a replayed, resumed or recovered
execution never asks the model again for a turn it already has.

``import flux_agents`` does not import litellm (it loads on the first model call), and sets
``LITELLM_LOCAL_MODEL_COST_MAP=True`` unless the environment says otherwise, so that a worker
without internet does not wait for litellm's remote price list; set it to ``False`` before
importing to fetch that list.
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from flux_agents.agent import Agent  # after the environment default
from flux_agents.budget import Budget
from flux_agents.compat import agent
from flux_agents.errors import (
    AgentError,
    BudgetExceededError,
    ContextWindowError,
    MaxTurnsError,
    MissingApiKeyError,
    ModelAuthenticationError,
    ModelCallError,
    ModelRateLimitError,
    ModelRequestError,
    ModelUnavailableError,
    OutputValidationError,
    PlanError,
)
from flux_agents.memory import WorkingMemory
from flux_agents.result import AgentResult, Usage
from flux_agents.tools import Tool

__all__ = [
    "Agent",
    "AgentError",
    "AgentResult",
    "Budget",
    "BudgetExceededError",
    "ContextWindowError",
    "MaxTurnsError",
    "MissingApiKeyError",
    "ModelAuthenticationError",
    "ModelCallError",
    "ModelRateLimitError",
    "ModelRequestError",
    "ModelUnavailableError",
    "OutputValidationError",
    "PlanError",
    "Tool",
    "Usage",
    "WorkingMemory",
    "agent",
]
