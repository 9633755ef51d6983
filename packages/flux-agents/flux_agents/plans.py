"""Plans: a planner agent turns a goal into steps with dependencies; Flux, not the model, runs
them as a DAG.

```python
planner = Planner("openai/gpt-4o-mini", executor=worker_agent, approve=True, on_failure="replan")
result = await planner.run("Write a report on durable execution")
```

The plan is validated (unique names, known dependencies, no cycle, at most ``max_steps``); an
invalid one goes back to the planner once with what is wrong. With ``approve=True`` the plan
waits at a pause named ``<name>:v<version>`` whose data is the plan; the resume input approves
it, replaces its steps, or rejects it with feedback, which makes the planner plan again. The
steps whose dependencies are done run together (at most ``max_parallel``), each an
``executor.run`` that sees the results of the steps it depends on. A failed step fails the
steps that depend on it, or (``on_failure="replan"``) has the planner plan what is left,
keeping the finished steps. Every plan, answer and step run is recorded, so a replay or a
resume runs nothing twice; the :class:`PlanResult` is the state of the plan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

from flux.errors import NonDeterminismError, UsageError
from flux.tasks import parallel, pause

from flux_agents.agent import Agent
from flux_agents.errors import PlanError
from flux_agents.plan_model import PlanDraft, PlanResult, Step, answer_of, validate_plan
from flux_agents.streaming import publish
from flux_agents.tools import tool_result_text

__all__ = ["PLANNER_SYSTEM", "Planner"]

PLANNER_SYSTEM = (
    "You plan work for others. Break the goal into at most {max_steps} steps. Give each step a "
    "short unique name (letters, digits, '_' or '-'), a description that someone who sees only "
    "that step and the results of the steps it depends on can act on, and the names of the "
    "steps it depends on. Steps without dependencies between them run at the same time."
)


class Planner:
    """Plans a goal with ``model`` and runs the plan's steps with ``executor``.

    Options: ``name`` (of the planner's task and pauses), ``max_steps``, ``max_parallel``
    (steps at once), ``approve`` (pause for a person's approval of each plan),
    ``on_failure`` (``"fail"``: a failed step fails its dependents; ``"replan"``: plan what is
    left, at most ``max_replans`` times), and the planner agent's own options (``api_base``,
    ``api_key_secret``, ``settings``, ``retry_max_attempts``...).

    Raises:
        UsageError: an option has the wrong value.
    """

    def __init__(
        self,
        model: str,
        *,
        executor: Agent[Any],
        name: str = "plan",
        max_steps: int = 8,
        max_parallel: int = 4,
        approve: bool = False,
        on_failure: Literal["fail", "replan"] = "fail",
        max_replans: int = 2,
        **agent_options: Any,
    ) -> None:
        if not isinstance(executor, Agent):
            raise UsageError(f"Planner(executor={executor!r}): give the Agent that runs steps")
        if on_failure not in ("fail", "replan"):
            raise UsageError(f"Planner(on_failure={on_failure!r}): use 'fail' or 'replan'")
        for label, value in (
            ("max_steps", max_steps),
            ("max_parallel", max_parallel),
            ("max_replans", max_replans + 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"Planner({label}=...): give a whole number >= 1")
        self.name = name
        self.executor = executor
        self.max_steps = max_steps
        self.max_parallel = max_parallel
        self.approve = approve
        self.on_failure = on_failure
        self.max_replans = max_replans
        self.agent: Agent[PlanDraft] = Agent(
            model,
            name=f"{name}-planner",
            system=PLANNER_SYSTEM.format(max_steps=max_steps),
            output_type=PlanDraft,
            **agent_options,
        )

    async def run(self, goal: str) -> PlanResult:
        """Plan ``goal``, have the plan approved if asked, and run it.

        Raises:
            PlanError: the planner gave an invalid plan twice in a row.
        """
        return await _Run(self, goal).run()


class _Run:
    """One ``planner.run(goal)``."""

    def __init__(self, planner: Planner, goal: str) -> None:
        self.p = planner
        self.goal = goal
        self.version = 0
        self.kept: list[Step] = []  # finished steps of earlier plans
        self.results: dict[str, Any] = {}
        self.failed: dict[str, str] = {}
        self.skipped: list[str] = []

    async def run(self) -> PlanResult:
        steps = await self.approved(await self.plan(self.first_prompt()))
        replans = 0
        while True:
            await self.execute(steps)
            if not self.failed or self.p.on_failure != "replan" or replans >= self.p.max_replans:
                break
            replans += 1
            self.kept += [s for s in steps if s.name in self.results]
            steps = await self.approved(await self.plan(self.replan_prompt()))
            self.failed, self.skipped = {}, []
        return PlanResult(
            self.goal,
            [*self.kept, *steps],
            dict(self.results),
            dict(self.failed),
            list(self.skipped),
            self.version,
        )

    # -- planning ------------------------------------------------------------------------------

    def first_prompt(self) -> str:
        return f"Goal: {self.goal}"

    def replan_prompt(self, feedback: str | None = None) -> str:
        lines = [f"Goal: {self.goal}", ""]
        if self.results:
            lines.append("These steps are done (new steps may depend on them by name):")
            lines += [f"- {n}: {tool_result_text(v)}" for n, v in self.results.items()]
        if self.failed:
            lines.append("These steps failed:")
            lines += [f"- {n}: {why}" for n, why in self.failed.items()]
        if feedback is not None:
            lines.append(f"A person rejected the last plan: {feedback}")
        lines.append("Plan the steps that are left to reach the goal.")
        return "\n".join(lines)

    async def plan(self, prompt: str) -> list[Step]:
        """A valid plan from the planner: one correction after an invalid one."""
        self.version += 1
        done = frozenset(self.results)
        draft = (await self.p.agent.run(prompt)).output
        try:
            validate_plan(draft.steps, self.p.max_steps, done)
        except PlanError as exc:
            fix = f"{prompt}\n\nYour last plan was invalid: {exc}. Give a corrected plan."
            draft = (await self.p.agent.run(fix)).output
            validate_plan(draft.steps, self.p.max_steps, done)
        await publish(self.p.name, "plan", version=self.version, steps=_view(draft.steps))
        return list(draft.steps)

    async def approved(self, steps: list[Step]) -> list[Step]:
        """``steps``, or what a person answered instead (each answer its own pause)."""
        if not self.p.approve:
            return steps
        problem: str | None = None
        while True:
            data: dict[str, Any] = {
                "goal": self.goal,
                "version": self.version,
                "steps": _view(steps),
                "done": sorted(self.results),
                "answer": 'true, {"steps": [...]} to run other steps, or '
                '{"approved": false, "feedback": "..."} to have it planned again',
            }
            if problem is not None:
                data["problem"] = problem
            answer = answer_of(await pause(f"{self.p.name}:v{self.version}", data))
            problem = answer.problem
            if answer.approved and answer.steps is not None:
                try:
                    validate_plan(answer.steps, self.p.max_steps, frozenset(self.results))
                except PlanError as exc:
                    problem = f"the edited plan is invalid: {exc}"
                else:
                    return answer.steps
            elif answer.approved:
                return steps
            elif problem is None:  # rejected: plan again with the feedback
                steps = await self.plan(self.replan_prompt(answer.feedback or "no reason given"))
                continue
            self.version += 1  # the same plan asked about again, under a new pause

    # -- running -------------------------------------------------------------------------------

    async def execute(self, steps: Sequence[Step]) -> None:
        limit = asyncio.Semaphore(self.p.max_parallel)
        while True:
            left = [
                s for s in steps
                if s.name not in self.results and s.name not in self.failed
                and s.name not in self.skipped
            ]  # fmt: skip
            blocked = {n for n in self.failed} | set(self.skipped)
            newly = [s for s in left if any(d in blocked for d in s.depends_on)]
            if newly:
                self.skipped += [s.name for s in newly]
                continue
            ready = [s for s in left if all(d in self.results for d in s.depends_on)]
            if not ready:
                return

            async def one(step: Step) -> tuple[bool, Any]:
                async with limit:
                    return await self.step(step)

            outcomes = await parallel(*(one(s) for s in ready))
            for step, (ok, value) in zip(ready, outcomes, strict=True):
                if ok:
                    self.results[step.name] = value
                else:
                    self.failed[step.name] = value

    async def step(self, step: Step) -> tuple[bool, Any]:
        lines = [f"Goal: {self.goal}", "", f"Your step, {step.name}: {step.description}"]
        if step.depends_on:
            lines += ["", "Results of the steps it depends on:"]
            lines += [f"- {d}: {tool_result_text(self.results[d])}" for d in step.depends_on]
        await publish(self.p.name, "step_start", step=step.name)
        try:
            result = await self.p.executor.run("\n".join(lines))
        except NonDeterminismError:
            raise
        except Exception as exc:  # the plan goes on without it (or is planned again)
            await publish(self.p.name, "step_end", step=step.name, ok=False)
            return False, f"{type(exc).__name__}: {exc}"
        await publish(self.p.name, "step_end", step=step.name, ok=True)
        return True, result.output


def _view(steps: Sequence[Step]) -> list[dict[str, Any]]:
    return [s.model_dump() for s in steps]
