"""Tool approval: a tool named in ``approve=`` pauses before each call until a person answers.

Each call is its own pause, named ``approve:<call id>`` after the call id the model's turn
recorded, with the tool and its arguments as the pause's data, so concurrent calls wait as
separate pauses and each is answered by name. The resume input is one of:

- ``true`` / ``"yes"`` / ``{"approved": true}``: run the call as the model asked;
- ``{"approved": true, "arguments": {...}}``: run it with these arguments instead;
- ``false`` / ``"no"`` / ``{"approved": false, "reason": "..."}``: do not run it; the model
  reads that it was declined, and why.

Anything else declines the call (an answer nobody can read must not run a tool).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["APPROVAL_PREFIX", "Decision", "decision_of", "pause_data", "pause_name"]

APPROVAL_PREFIX = "approve:"
_YES = frozenset({"yes", "y", "approve", "approved", "ok", "true"})
_NO = frozenset({"no", "n", "decline", "declined", "reject", "rejected", "false"})


@dataclass(frozen=True, slots=True)
class Decision:
    """A person's answer to an approval pause."""

    approved: bool
    arguments: dict[str, Any] | None = None
    """Replacement arguments (approved with an edit), or None to keep the model's."""
    reason: str | None = None


def pause_name(call_id: str) -> str:
    return f"{APPROVAL_PREFIX}{call_id}"


def pause_data(agent: str, call: dict[str, Any]) -> dict[str, Any]:
    """What the pause shows: the agent, the tool and its arguments (parsed when they are
    JSON, the model's raw text otherwise)."""
    raw = call["function"].get("arguments") or "{}"
    try:
        arguments: Any = json.loads(raw)
    except ValueError:
        arguments = raw
    return {
        "agent": agent,
        "tool": call["function"]["name"],
        "arguments": arguments,
        "call_id": call["id"],
        "answer": 'true, false, {"approved": true, "arguments": {...}} or '
        '{"approved": false, "reason": "..."}',
    }


def decision_of(value: Any) -> Decision:
    """Read a resume input as a :class:`Decision`."""
    if isinstance(value, bool):
        return Decision(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _YES:
            return Decision(True)
        if word in _NO:
            return Decision(False)
        return Decision(False, reason=f"the answer {value!r} was not understood")
    if isinstance(value, dict) and isinstance(value.get("approved"), bool):
        arguments = value.get("arguments")
        reason = value.get("reason")
        if arguments is not None and not isinstance(arguments, dict):
            return Decision(False, reason=f"the edited arguments {arguments!r} are not an object")
        return Decision(
            value["approved"],
            arguments if value["approved"] else None,
            str(reason) if reason is not None else None,
        )
    return Decision(False, reason=f"the answer {value!r} was not understood")


def declined_text(decision: Decision) -> str:
    """What the model reads for a declined call."""
    why = f": {decision.reason}" if decision.reason else ""
    return f"declined: a person did not approve this call{why}"
