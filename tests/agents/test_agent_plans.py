"""Plans: validated (names, dependencies, cycles, size), approved through a pause (as planned,
edited, or rejected with feedback and planned again), run by Flux as a DAG with ready steps in
parallel, and after a failure either failing its dependents or replanned keeping what is done."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from flux import ExecutionContext, workflow
from flux.testing import MemoryStore, run
from flux_agents import Agent, PlanError, Planner, Step
from flux_agents.plan_model import validate_plan

from tests.agents.fake_provider import FakeProvider, Reply, Request


def plan_reply(*steps: tuple[str, list[str]]) -> Reply:
    body = {"steps": [{"name": n, "description": f"do {n}", "depends_on": d} for n, d in steps]}
    return Reply(text=json.dumps(body))


class Script:
    """Answers the planner with queued plans and each step with its result ("<step> done"),
    failing the steps named in ``fail``; holds steps in ``hold`` until ``release`` is set."""

    def __init__(self, provider: FakeProvider, *plans: Reply) -> None:
        self.plans = list(plans)
        self.fail: set[str] = set()
        self.hold: dict[str, threading.Event] = {}
        self.steps: list[str] = []
        self.prompts: dict[str, str] = {}
        provider.on_request = self.answer

    def answer(self, request: Request) -> Reply:
        system = request.messages[0]["content"] if request.messages else ""
        if system.startswith("You plan work"):
            return self.plans.pop(0)
        prompt = request.messages[-1]["content"]
        step = prompt.split("Your step, ", 1)[1].split(":", 1)[0]
        self.steps.append(step)
        self.prompts[step] = prompt
        if step in self.fail:
            return Reply(status=400, error=f"{step} cannot be done")
        if step in self.hold:
            return Reply(text=f"{step} done", hold=self.hold[step])
        return Reply(text=f"{step} done")


def planner_for(provider: FakeProvider, **options: Any) -> Planner:
    executor = Agent("openai/fake", name="doer", api_base=provider.openai_base)
    return Planner("openai/fake", executor=executor, api_base=provider.openai_base, **options)


def flow_of(planner: Planner):
    @workflow.with_options(name="planned")
    async def planned(ctx: ExecutionContext[str]):
        return await planner.run(ctx.input)

    return planned


def test_steps_run_as_a_dag_with_ready_steps_together(provider: FakeProvider) -> None:
    script = Script(provider, plan_reply(("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])))
    # b answers only once c has been asked: both must be in flight at once
    script.hold["b"] = threading.Event()
    original = script.answer

    def answer(request: Request) -> Reply:
        reply = original(request)
        if script.steps[-1:] == ["c"]:
            script.hold["b"].set()
        return reply

    provider.on_request = answer

    ctx = run(flow_of(planner_for(provider)), "ship it")

    result = ctx.output
    assert result.succeeded and result.versions == 1
    assert result.results == {"a": "a done", "b": "b done", "c": "c done", "d": "d done"}
    assert script.steps[0] == "a" and set(script.steps[1:3]) == {"b", "c"}
    assert script.steps[3] == "d"
    assert "- b: b done" in script.prompts["d"] and "- c: c done" in script.prompts["d"]
    assert "- a: a done" in script.prompts["b"]


def test_a_failed_step_fails_its_dependents_only(provider: FakeProvider) -> None:
    script = Script(provider, plan_reply(("a", []), ("b", ["a"]), ("c", []), ("d", ["b"])))
    script.fail.add("b")

    result = run(flow_of(planner_for(provider)), "try").output

    assert not result.succeeded
    assert set(result.results) == {"a", "c"}
    assert list(result.failed) == ["b"] and "b cannot be done" in result.failed["b"]
    assert result.skipped == ["d"]


def test_a_failure_is_replanned_keeping_the_finished_steps(provider: FakeProvider) -> None:
    script = Script(
        provider,
        plan_reply(("a", []), ("b", ["a"])),
        plan_reply(("b2", ["a"])),  # the replan: a is done, b is replaced
    )
    script.fail.add("b")

    result = run(flow_of(planner_for(provider, on_failure="replan")), "build").output

    assert result.succeeded and result.versions == 2
    assert result.results == {"a": "a done", "b2": "b2 done"}
    assert [s.name for s in result.steps] == ["a", "b2"]
    assert script.steps == ["a", "b", "b2"]  # a was not run again
    replan = next(r for r in provider.chat_requests() if "These steps failed" in str(r.messages))
    prompt = replan.messages[-1]["content"]
    assert "- a: a done" in prompt and "- b: ModelRequestError:" in prompt


def test_approval_with_an_edit_and_a_rejection(provider: FakeProvider) -> None:
    script = Script(
        provider,
        plan_reply(("draft", []), ("publish", ["draft"])),
        plan_reply(("outline", []), ("draft", ["outline"])),
    )
    flow = flow_of(planner_for(provider, approve=True))
    store = MemoryStore()

    first = run(flow, "an article", store=store)
    (asked,) = first.pauses
    assert asked.name == "plan:v1"
    assert [s["name"] for s in asked.data["steps"]] == ["draft", "publish"]

    rejected = {"approved": False, "feedback": "outline first, and do not publish"}
    second = run(flow, rejected, execution_id=first.execution_id, store=store)
    (again,) = second.pauses
    assert again.name == "plan:v2"
    assert [s["name"] for s in again.data["steps"]] == ["outline", "draft"]
    feedback = provider.chat_requests()[1].messages[-1]["content"]
    assert "A person rejected the last plan: outline first, and do not publish" in feedback

    edit = {"steps": [{"name": "outline", "description": "list the sections"}]}
    done = run(flow, edit, execution_id=first.execution_id, store=store)

    result = done.output
    assert result.results == {"outline": "outline done"} and result.versions == 2
    assert script.steps == ["outline"]
    assert "list the sections" in script.prompts["outline"]


def test_an_invalid_edit_is_asked_about_again(provider: FakeProvider) -> None:
    Script(provider, plan_reply(("a", [])))
    flow = flow_of(planner_for(provider, approve=True))
    store = MemoryStore()
    first = run(flow, "x", store=store)

    cyclic = {"steps": [{"name": "a", "description": "", "depends_on": ["a"]}]}
    again = run(flow, cyclic, execution_id=first.execution_id, store=store)

    (asked,) = again.pauses
    assert asked.name == "plan:v2"
    assert asked.data["problem"] == (
        "the edited plan is invalid: the steps depend on each other in a cycle: a -> a"
    )
    done = run(flow, True, execution_id=first.execution_id, store=store)
    assert done.output.results == {"a": "a done"}


def test_an_invalid_plan_gets_one_correction(provider: FakeProvider) -> None:
    Script(provider, plan_reply(("a", ["b"]), ("b", ["a"])), plan_reply(("a", []), ("b", ["a"])))

    result = run(flow_of(planner_for(provider)), "y").output

    assert result.results == {"a": "a done", "b": "b done"}
    correction = provider.chat_requests()[1].messages[-1]["content"]
    assert "Your last plan was invalid: the steps depend on each other in a cycle" in correction


def test_a_second_invalid_plan_fails(provider: FakeProvider) -> None:
    Script(provider, plan_reply(("a", ["zz"])), plan_reply(("a", ["zz"])))

    ctx = run(flow_of(planner_for(provider)), "z")

    assert isinstance(ctx.output, PlanError)
    assert str(ctx.output) == "step 'a' depends on 'zz', which is no step of the plan"


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ([], "the plan has no steps"),
        ([("a", []), ("a", [])], "two steps are named 'a'"),
        ([("a b", [])], "step name 'a b'"),
        ([("a", ["b"]), ("b", ["c"]), ("c", ["a"])], "in a cycle: a -> b -> c -> a"),
        ([(str(i), []) for i in range(4)], "4 steps, more than the limit of 3"),
    ],
)
def test_validation(steps: list[tuple[str, list[str]]], problem: str) -> None:
    plan = [Step(name=n, description="", depends_on=d) for n, d in steps]
    with pytest.raises(PlanError, match=problem):
        validate_plan(plan, max_steps=3)
    validate_plan([Step(name="b", description="", depends_on=["a"])], 3, frozenset({"a"}))
