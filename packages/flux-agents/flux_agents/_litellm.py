"""The one place that talks to litellm: it is imported on the first model call (about 4 s and
200 MB, never at ``import flux_agents``), called with its own retries off, and its errors are
mapped to :mod:`flux_agents.errors` so that Flux's retry policy is the only one and a recorded
failure reads the same in every process.

A call returns the turn as the event log records it: plain JSON values (the assistant
message, finish reason, usage, cost and model), nothing of litellm's types.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from flux_agents import errors

__all__ = ["ModelCall", "complete", "litellm", "provider_of"]

KEYLESS_PROVIDERS = frozenset({"ollama", "ollama_chat", "lm_studio", "hosted_vllm", "llamafile"})
"""Providers that serve models without an API key."""

_BASE_URL_VARIABLES = ("OPENAI_BASE_URL", "OPENAI_API_BASE")

_module: Any = None


def litellm() -> Any:
    """The litellm module, imported and configured on first use."""
    global _module
    if _module is None:
        # Offline, litellm's import fetches a remote price list for seconds before giving
        # up; flux_agents sets this default when imported, set here again for direct use.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm as module

        module.suppress_debug_info = True
        module.drop_params = False
        _module = module
    return _module


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCall:
    """One request to a model: what :func:`complete` sends."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    response_format: Any = None
    api_base: str | None = None
    api_key: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    pricing: dict[str, float] | None = None
    on_text: Callable[[str], Awaitable[None]] | None = None
    """Streams the reply when set: awaited with each piece of text as it arrives."""


def provider_of(model: str) -> str:
    """litellm's provider name for ``model`` (``openai/gpt-4o`` -> ``openai``).

    Raises:
        ModelRequestError: litellm knows no provider for that model string.
    """
    try:
        return str(litellm().get_llm_provider(model)[1])
    except Exception as exc:
        raise errors.ModelRequestError(
            f"model {model!r}: litellm knows no provider for it ({_first_line(exc)}); write it "
            "as provider/model, e.g. 'openai/gpt-4o-mini' or 'ollama_chat/llama3.1'",
            model=model,
        ) from None


async def complete(call: ModelCall) -> dict[str, Any]:
    """Send ``call`` once and return the recorded turn:
    ``{message, finish_reason, usage, cost, model}``.

    Raises:
        ModelCallError: a subclass per failure (see :mod:`flux_agents.errors`).
    """
    lib = litellm()
    provider = provider_of(call.model)
    api_base, api_key = _endpoint(call, provider)
    kwargs: dict[str, Any] = {
        **call.settings,
        "model": call.model,
        "messages": call.messages,
        "max_retries": 0,  # Flux's retry policy is the only one
        "num_retries": 0,
    }
    if call.tools:
        kwargs["tools"] = call.tools
    if call.response_format is not None:
        kwargs["response_format"] = call.response_format
    if api_base is not None:
        kwargs["api_base"] = api_base
    if api_key is not None:
        kwargs["api_key"] = api_key
    try:
        if call.on_text is None:
            response = await lib.acompletion(**kwargs)
        else:
            response = await _streamed(lib, kwargs, call.on_text)
    except errors.ModelCallError:
        raise
    except Exception as exc:
        raise _mapped(exc, call.model, provider) from None
    return _turn(lib, response, call)


def _endpoint(call: ModelCall, provider: str) -> tuple[str | None, str | None]:
    """The address and key to send: an OpenAI-compatible address may come from the standard
    variables, a hosted provider needs a key (checked here, before anything is sent)."""
    api_base = call.api_base
    if api_base is None and provider == "openai":
        api_base = next((os.environ[v] for v in _BASE_URL_VARIABLES if os.environ.get(v)), None)
    api_key = call.api_key
    if api_key is not None or provider in KEYLESS_PROVIDERS:
        return api_base, api_key
    found = litellm().validate_environment(model=call.model)
    if found.get("keys_in_environment"):
        return api_base, None
    if api_base is not None:
        # A self-hosted OpenAI-compatible server mostly takes no key; one that does answers
        # 401, which fails with ModelAuthenticationError.
        return api_base, "unused"
    missing = [k for k in found.get("missing_keys", []) if "KEY" in k or "TOKEN" in k]
    names = " or ".join(missing) or "the provider's API key variable"
    raise errors.MissingApiKeyError(
        f"model {call.model!r} ({provider}) needs an API key and none was found: set {names} "
        "in the worker's environment, or store it as a Flux secret and name it with "
        "Agent(api_key_secret=...)",
        provider=provider,
        model=call.model,
        missing=missing,
    )


async def _streamed(
    lib: Any, kwargs: dict[str, Any], on_text: Callable[[str], Awaitable[None]]
) -> Any:
    # Without include_usage litellm estimates usage with a tokenizer; the provider's own
    # count is what budgets and working memory are trimmed by.
    stream = await lib.acompletion(**kwargs, stream=True, stream_options={"include_usage": True})
    chunks = []
    async for chunk in stream:
        chunks.append(chunk)
        if chunk.choices:
            text = chunk.choices[0].delta.content
            if text:
                await on_text(text)
    return lib.stream_chunk_builder(chunks, messages=kwargs["messages"])


def _turn(lib: Any, response: Any, call: ModelCall) -> dict[str, Any]:
    choice = response.choices[0]
    message = choice.message
    recorded: dict[str, Any] = {"role": "assistant", "content": message.content}
    calls = [
        {
            "id": c.id,
            "type": "function",
            "function": {"name": c.function.name, "arguments": c.function.arguments or "{}"},
        }
        for c in message.tool_calls or ()
    ]
    if calls:
        recorded["tool_calls"] = calls
    usage = getattr(response, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    return {
        "message": recorded,
        "finish_reason": choice.finish_reason,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
        "cost": _cost(lib, response, call),
        "model": str(response.model or call.model),
    }


def _cost(lib: Any, response: Any, call: ModelCall) -> float | None:
    """The turn's price in USD, ``None`` when neither litellm's price list nor the agent's
    ``pricing`` knows the model."""
    try:
        if call.pricing:
            value = lib.completion_cost(
                completion_response=response, custom_cost_per_token=call.pricing
            )
        else:
            value = lib.completion_cost(completion_response=response, model=call.model)
    except Exception:
        return None
    return float(value) if value is not None else None


def _mapped(exc: Exception, model: str, provider: str) -> errors.ModelCallError:
    """The Flux error for a litellm (or openai, or httpx) failure."""
    lib = litellm()
    x = lib.exceptions
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    text = _first_line(exc)
    where = f"model {model!r} ({provider})"
    details: dict[str, Any] = {"provider": provider, "model": model, "status_code": status}
    if isinstance(exc, x.ContextWindowExceededError):
        return errors.ContextWindowError(
            f"{where}: the conversation does not fit its context window: {text}; give the "
            "agent a smaller working memory (memory=WorkingMemory(max_tokens=...))",
            **details,
        )
    if isinstance(exc, x.AuthenticationError | x.PermissionDeniedError):
        return errors.ModelAuthenticationError(
            f"{where} refused the credentials (HTTP {status}): {text}; check the API key",
            **details,
        )
    if isinstance(exc, x.RateLimitError):
        retry_after = _retry_after(exc)
        wait = f"; it asked to wait {retry_after:g} s" if retry_after is not None else ""
        return errors.ModelRateLimitError(
            f"{where} is rate limited (HTTP 429){wait}: {text}",
            retry_after=retry_after,
            **details,
        )
    if isinstance(exc, x.Timeout | x.APIConnectionError | x.ServiceUnavailableError):
        return errors.ModelUnavailableError(f"{where} could not be reached: {text}", **details)
    if isinstance(exc, x.InternalServerError | x.BadGatewayError) or (status or 0) >= 500:
        return errors.ModelUnavailableError(f"{where} failed (HTTP {status}): {text}", **details)
    if isinstance(
        exc,
        x.BadRequestError | x.NotFoundError | x.UnprocessableEntityError | x.UnsupportedParamsError,
    ):
        return errors.ModelRequestError(
            f"{where} refused the request (HTTP {status}): {text}", **details
        )
    if status is not None and 400 <= status < 500 and status not in (408, 409):
        return errors.ModelRequestError(
            f"{where} refused the request (HTTP {status}): {text}", **details
        )
    kind = type(exc).__name__
    return errors.ModelUnavailableError(f"{where} failed ({kind}): {text}", **details)


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or getattr(exc, "headers", None) or {}
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date: the policy's own delay applies


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    # litellm prefixes its class names ("litellm.RateLimitError: RateLimitError: ..."):
    # the Flux error's type says that already.
    for _ in range(3):
        head, sep, rest = line.partition(": ")
        if sep and head.replace(".", "").replace("litellm", "").isidentifier() and rest:
            line = rest
        else:
            break
    return line[:300]
