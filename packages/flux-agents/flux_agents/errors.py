"""What an agent raises. Every class derives from :class:`flux.FluxError`::

    AgentError                        an agent could not finish its run
    ├── ModelCallError                a model call failed; ``retryable`` says whether Flux retries
    │   ├── ModelRateLimitError       429: retried, after ``retry_after`` seconds when given
    │   ├── ModelUnavailableError     5xx, timeout, connection lost, stream cut: retried
    │   ├── ModelAuthenticationError  401/403 or no API key: not retried
    │   │   └── MissingApiKeyError    no key in the environment or the secret, found before calling
    │   └── ModelRequestError         the provider refused the request (400, 404...): not retried
    │       └── ContextWindowError    the conversation does not fit the model: not retried
    ├── OutputValidationError         the final answer did not validate, even after a correction
    ├── BudgetExceededError           the next turn would pass the run's token or cost budget
    ├── MaxTurnsError                 no final answer within ``max_turns`` model turns
    └── PlanError                     a plan is invalid (cycle, unknown step...) or was rejected

They are picklable and keep ``details`` (provider, model, status code...), so a failed run's
recorded error reads the same in every process that replays it. The task engine reads
``retryable`` and ``retry_after`` (see :class:`flux.task`): a model call's own task options
decide how often the retryable ones are retried.
"""

from __future__ import annotations

from typing import Any, ClassVar

from flux.errors import FluxError

__all__ = [
    "AgentError",
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
]


class AgentError(FluxError):
    """An agent could not finish its run."""

    code = "agent_error"


class ModelCallError(AgentError):
    """A call to the model failed. ``details``: ``provider``, ``model``, ``status_code``."""

    code = "model_call_error"
    retryable: ClassVar[bool] = True

    @property
    def provider(self) -> str | None:
        return self.details.get("provider")

    @property
    def model(self) -> str | None:
        return self.details.get("model")

    @property
    def status_code(self) -> int | None:
        return self.details.get("status_code")


class ModelRateLimitError(ModelCallError):
    """The provider asked to slow down (HTTP 429)."""

    code = "model_rate_limited"

    @property
    def retry_after(self) -> float | None:
        """Seconds the provider asked to wait (its ``Retry-After``), if it said."""
        value: Any = self.details.get("retry_after")
        return float(value) if isinstance(value, int | float) else None


class ModelUnavailableError(ModelCallError):
    """The provider failed or could not be reached: 5xx, a timeout, a cut stream."""

    code = "model_unavailable"


class ModelAuthenticationError(ModelCallError):
    """The provider refused the credentials (401/403)."""

    code = "model_authentication"
    retryable = False


class MissingApiKeyError(ModelAuthenticationError):
    """No API key for the provider: neither the agent's secret nor the environment has one."""

    code = "missing_api_key"


class ModelRequestError(ModelCallError):
    """The provider refused the request as malformed or unsupported (400, 404, 422)."""

    code = "model_request"
    retryable = False


class ContextWindowError(ModelRequestError):
    """The conversation is longer than the model's context window."""

    code = "context_window"


class OutputValidationError(AgentError):
    """The final answer did not validate into the output type, even after one correction."""

    code = "output_validation"


class BudgetExceededError(AgentError):
    """The next model turn would exceed the run's budget; it was not sent.
    ``details``: ``limit`` (what was capped), ``budget``, ``spent``."""

    code = "budget_exceeded"


class MaxTurnsError(AgentError):
    """The model gave no final answer within ``max_turns`` turns."""

    code = "max_turns"


class PlanError(AgentError):
    """A plan is invalid (a cycle, an unknown dependency, too many steps) or was rejected."""

    code = "plan_error"
