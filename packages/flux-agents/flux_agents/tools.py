"""Tools: the user's Flux tasks, described to the model by their signature and docstring.

A tool call runs the task like any other call in the workflow, so its retries, timeout,
fallback and cache apply, and replay returns its recorded result. Whatever goes wrong with a
call (an unknown tool, arguments that are not JSON or do not validate, the task's own error)
goes back to the model as the tool's result, worded the same way on every replay.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from dataclasses import dataclass
from typing import Any

from flux.errors import UsageError
from flux.task import task

__all__ = ["Tool", "tool_error_text", "tool_result_text"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Tool:
    """A Flux task offered to a model."""

    task: task[Any, Any]
    name: str
    description: str
    parameters: dict[str, Any]
    arguments: Any
    """The pydantic model the model's arguments are validated with."""

    @classmethod
    def of(cls, value: Any) -> Tool:
        """The tool for a ``@task`` (or a :class:`Tool`, returned as is).

        Raises:
            UsageError: ``value`` is not a Flux task, or its name is not one a model accepts.
        """
        if isinstance(value, Tool):
            return value
        if not isinstance(value, task):
            raise UsageError(
                f"tools=[...]: {value!r} is not a Flux task; decorate the function with @task"
            )
        if not _NAME.match(value.name):
            raise UsageError(
                f"tool {value.name!r}: models take tool names of letters, digits, '_' and '-' "
                "(at most 64); give the task another name with @task.with_options(name=...)"
            )
        model = _arguments_model(value)
        schema = model.model_json_schema()
        schema.pop("title", None)
        doc = inspect.getdoc(value.func) or ""
        description = doc.split("\n\n", 1)[0].replace("\n", " ").strip() or value.name
        return cls(value, value.name, description, schema, model)

    def schema(self) -> dict[str, Any]:
        """The tool as the OpenAI-style ``tools`` list describes it."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def validate(self, raw: str | None) -> dict[str, Any]:
        """The keyword arguments for the task, from the model's JSON ``raw``.

        Raises:
            ValueError: not JSON, not an object, or not valid for the task's signature (the
                message says what to fix, for the model to read).
        """
        try:
            data = json.loads(raw or "{}")
        except ValueError as exc:
            raise ValueError(f"the arguments are not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError("the arguments must be a JSON object")
        from pydantic import ValidationError

        try:
            parsed = self.arguments.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ValueError(problems) from None
        return {name: getattr(parsed, name) for name in type(parsed).model_fields}


def _arguments_model(t: task[Any, Any]) -> Any:
    from pydantic import ConfigDict, create_model

    signature = inspect.signature(t.func)
    try:
        hints = typing.get_type_hints(t.func, include_extras=True)
    except Exception:  # an annotation that does not resolve: the schema says "any"
        hints = {}
    filled = {"secrets"} if t.secret_requests else set()  # the engine fills these
    if t.metadata:
        filled.add("metadata")
    fields: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or name in filled:
            continue
        annotation = hints.get(name, Any)
        default = ... if param.default is param.empty else param.default
        fields[name] = (annotation, default)
    return create_model(  # type: ignore[call-overload]  # fields built at run time
        f"{t.name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
    )


def tool_result_text(value: Any) -> str:
    """What the model reads as a tool's result: text as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    dump = getattr(value, "model_dump_json", None)
    if callable(dump):
        return str(dump())
    from flux.serialization import to_view

    return json.dumps(to_view(value), ensure_ascii=False, default=str)


def tool_error_text(exc: BaseException) -> str:
    """What the model reads when a tool call failed."""
    return f"error: {type(exc).__name__}: {exc}"
