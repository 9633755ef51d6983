"""What a plan is: named steps with dependencies, checked before anything runs, and how a
person's answer to a plan's approval pause reads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from flux_agents.errors import PlanError

__all__ = ["PlanAnswer", "PlanDraft", "PlanResult", "Step", "answer_of", "validate_plan"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Step(BaseModel):
    """One step of a plan."""

    name: str = Field(description="a short unique name: letters, digits, '_' or '-'")
    description: str = Field(description="what to do in this step, for the one who does it")
    depends_on: list[str] = Field(
        default_factory=list, description="names of the steps whose results this one needs"
    )


class PlanDraft(BaseModel):
    """What the planner answers."""

    steps: list[Step]


@dataclass(frozen=True, slots=True)
class PlanResult:
    """The outcome of ``await planner.run(goal)``.

    ``steps`` are the steps run or left, in plan order (those kept from earlier plans first);
    ``results`` the output of each finished step; ``failed`` the error of each failed one;
    ``skipped`` the steps not run because a step they depend on failed; ``versions`` how many
    plans were made (1, plus each replan after a failure or a rejection).
    """

    goal: str
    steps: list[Step]
    results: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    versions: int = 1

    @property
    def succeeded(self) -> bool:
        return not self.failed and not self.skipped


def validate_plan(steps: list[Step], max_steps: int, done: frozenset[str] = frozenset()) -> None:
    """Check a plan: 1 to ``max_steps`` steps with unique names (not among the ``done`` steps
    of earlier plans), dependencies that exist (here or among ``done``), no cycle.

    Raises:
        PlanError: what is wrong, naming the steps.
    """
    if not steps:
        raise PlanError("the plan has no steps")
    if len(steps) > max_steps:
        raise PlanError(f"the plan has {len(steps)} steps, more than the limit of {max_steps}")
    names: set[str] = set()
    for step in steps:
        if not _NAME.match(step.name):
            raise PlanError(f"step name {step.name!r}: use 1 to 64 letters, digits, '_' or '-'")
        if step.name in names or step.name in done:
            raise PlanError(f"two steps are named {step.name!r}; step names must be unique")
        names.add(step.name)
    for step in steps:
        unknown = [d for d in step.depends_on if d not in names and d not in done]
        if unknown:
            raise PlanError(
                f"step {step.name!r} depends on {', '.join(map(repr, unknown))}, which is no "
                "step of the plan"
            )
    cycle = _cycle({s.name: [d for d in s.depends_on if d in names] for s in steps})
    if cycle:
        raise PlanError(f"the steps depend on each other in a cycle: {' -> '.join(cycle)}")


def _cycle(graph: dict[str, list[str]]) -> list[str]:
    """A cycle of ``graph`` as the path around it (first name repeated at the end), or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


@dataclass(frozen=True, slots=True)
class PlanAnswer:
    """A person's answer to a plan's approval pause."""

    approved: bool
    steps: list[Step] | None = None
    """Replacement steps (approved with an edit)."""
    feedback: str | None = None
    """Why it was rejected: the planner makes a new plan with it."""
    problem: str | None = None
    """Why the answer could not be used (the plan is asked about again)."""


def answer_of(value: Any) -> PlanAnswer:
    """Read a resume input: ``true``/``"yes"`` approves; ``{"steps": [...]}`` (with or without
    ``"approved": true``) approves these steps instead; ``false``, ``"no"`` or
    ``{"approved": false, "feedback": "..."}`` rejects, and the planner tries again."""
    if value is True or (isinstance(value, str) and value.strip().lower() in ("yes", "y", "ok")):
        return PlanAnswer(True)
    if value is False or (isinstance(value, str) and value.strip().lower() in ("no", "n")):
        return PlanAnswer(False)
    if isinstance(value, dict):
        if value.get("approved") is False:
            feedback = value.get("feedback")
            return PlanAnswer(False, feedback=str(feedback) if feedback is not None else None)
        if "steps" in value:
            try:
                steps = PlanDraft.model_validate({"steps": value["steps"]}).steps
            except ValidationError as exc:
                return PlanAnswer(False, problem=f"the edited steps do not read as steps: {exc}")
            return PlanAnswer(True, steps=steps)
        if value.get("approved") is True:
            return PlanAnswer(True)
    return PlanAnswer(False, problem=f"the answer {value!r} was not understood")
