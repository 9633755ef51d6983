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
from typing import Any

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
from flux_agents.long_term import LongTermMemory
from flux_agents.memory import WorkingMemory
from flux_agents.result import AgentResult, Usage
from flux_agents.tools import Tool

_LAZY = {
    "Planner": "flux_agents.plans",
    "PlanResult": "flux_agents.plan_model",
    "Step": "flux_agents.plan_model",
}


def __getattr__(name: str) -> Any:
    # Plans build pydantic models at import: loaded on first use, so that `import
    # flux_agents` stays cheap.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flux_agents' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Agent",
    "AgentError",
    "AgentResult",
    "Budget",
    "BudgetExceededError",
    "ContextWindowError",
    "LongTermMemory",
    "MaxTurnsError",
    "MissingApiKeyError",
    "ModelAuthenticationError",
    "ModelCallError",
    "ModelRateLimitError",
    "ModelRequestError",
    "ModelUnavailableError",
    "OutputValidationError",
    "PlanError",
    "PlanResult",
    "Planner",
    "Step",
    "Tool",
    "Usage",
    "WorkingMemory",
    "agent",
]
