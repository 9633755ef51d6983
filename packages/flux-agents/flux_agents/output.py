"""Structured output: the final answer validated into a pydantic model.

Where litellm says the model supports a JSON schema response format, the schema is sent as
the request's ``response_format`` (OpenAI's strict ``json_schema``, Ollama's ``format``...);
otherwise the schema goes into the system prompt of the request. Either way the conversation
the turn is recorded with is the same, so which one a worker picks does not change replay.
An answer that does not validate gets one corrective turn, then fails the run with
:class:`~flux_agents.errors.OutputValidationError`.
"""

from __future__ import annotations

import json
from typing import Any

from flux.errors import UsageError

__all__ = ["OutputSpec"]


class OutputSpec:
    """How one ``output_type`` is asked for and read."""

    __slots__ = ("schema", "type")

    def __init__(self, output_type: Any) -> None:
        from pydantic import BaseModel

        if not (isinstance(output_type, type) and issubclass(output_type, BaseModel)):
            raise UsageError(
                f"output_type={output_type!r}: give a pydantic model class (a subclass of "
                "pydantic.BaseModel)"
            )
        self.type = output_type
        self.schema = output_type.model_json_schema()

    def instruction(self) -> str:
        """The system prompt's addition where the provider has no native schema mode."""
        schema = json.dumps(self.schema, separators=(",", ":"), sort_keys=True)
        return (
            "When you give your final answer, answer with a single JSON object and nothing "
            f"else (no prose, no code fence) that matches this JSON schema: {schema}"
        )

    def with_instruction(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``messages`` with :meth:`instruction` added to the system prompt (a copy)."""
        text = self.instruction()
        if messages and messages[0].get("role") == "system":
            first = dict(messages[0])
            first["content"] = f"{first.get('content') or ''}\n\n{text}".strip()
            return [first, *messages[1:]]
        return [{"role": "system", "content": text}, *messages]

    def parse(self, content: str | None) -> Any:
        """The validated answer.

        Raises:
            ValueError: not JSON, or not valid for the model; the message says what to fix.
        """
        from pydantic import ValidationError

        text = _unfenced(content or "")
        try:
            return self.type.model_validate_json(text)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ValueError(problems) from None

    def correction(self, problem: str) -> dict[str, Any]:
        """The user message of the corrective turn."""
        return {
            "role": "user",
            "content": (
                f"Your answer does not match the required JSON schema ({problem}). Answer "
                "again with only the JSON object, fixed."
            ),
        }


def _unfenced(text: str) -> str:
    """The JSON inside a Markdown code fence, which models add although told not to."""
    stripped = text.strip()
    if stripped.startswith("```"):
        body = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        if body.rstrip().endswith("```"):
            body = body.rstrip()[:-3]
        return body.strip()
    return stripped
