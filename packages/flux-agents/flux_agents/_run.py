"""One run of an agent: the loop of model turns and tool calls.

Every model turn is a Flux task whose recorded arguments are the turn number and the digest
of the conversation (never the messages), and whose recorded result is the assistant's message
with its usage and cost. Tool calls are the user's tasks. Replay therefore rebuilds the same
conversation from recorded values alone and sends nothing; a crash between a tool and the next
turn resumes at that turn.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from flux.errors import ExecutionPaused, NonDeterminismError
from flux.task import task
from flux.tasks import parallel, pause

from flux_agents import approvals
from flux_agents._conversation import Conversation
from flux_agents.errors import MaxTurnsError, OutputValidationError
from flux_agents.result import AgentResult, Usage
from flux_agents.streaming import publish
from flux_agents.tools import tool_error_text, tool_result_text

if TYPE_CHECKING:
    from flux_agents.agent import Agent

__all__ = ["AgentRun"]


class AgentRun:
    """The state of one ``agent.run(prompt)`` while its body runs (one per call)."""

    def __init__(self, agent: Agent[Any], fingerprint: str) -> None:
        self.agent = agent
        self.conversation = Conversation(fingerprint)
        self.usage = Usage()
        self.cost: float | None = 0.0
        self.turns = 0
        self.last: dict[str, Any] | None = None
        self.sent = 0  # messages the previous turn sent
        self.corrected = False
        self.history = 0

    async def run(self, prompt: Any) -> AgentResult[Any]:
        agent = self.agent
        if agent.system:
            self.conversation.add({"role": "system", "content": agent.system})
        if agent.memory is not None:
            self.conversation.extend(agent.memory.recall(agent.name))
        self.history = len(self.conversation.messages)
        self.conversation.add({"role": "user", "content": prompt})
        while True:
            if self.turns >= agent.max_turns:
                raise MaxTurnsError(
                    f"agent {agent.name!r} gave no final answer within max_turns="
                    f"{agent.max_turns} model turns; raise max_turns or simplify the task",
                    agent=agent.name,
                    max_turns=agent.max_turns,
                )
            turn = await self.model_turn()
            message = turn["message"]
            calls = message.get("tool_calls")
            if calls:
                self.conversation.extend(await self.tool_results(calls))
                continue
            if agent.output is None:
                return self.result(message.get("content") or "")
            try:
                output = agent.output.parse(message.get("content"))
            except ValueError as exc:
                if self.corrected:
                    raise OutputValidationError(
                        f"agent {agent.name!r}: the answer does not match "
                        f"{agent.output.type.__name__} even after a correction: {exc}",
                        agent=agent.name,
                        answer=message.get("content"),
                    ) from None
                self.corrected = True
                self.conversation.add(agent.output.correction(str(exc)))
                continue
            return self.result(output)

    def result(self, output: Any) -> AgentResult[Any]:
        return AgentResult(
            output=output,
            messages=list(self.conversation.messages),
            usage=self.usage,
            cost=self.cost,
            turns=self.turns,
            history=self.history,
        )

    # -- model turns ---------------------------------------------------------------------------

    async def model_turn(self) -> dict[str, Any]:
        agent = self.agent
        messages = self.conversation.messages
        if agent.budget is not None:
            agent.budget.check(
                agent=agent.name,
                spent=self.usage,
                cost=self.cost,
                last=self.last,
                added=messages[self.sent :],
                turns=self.turns,
            )
        self.turns += 1
        key = {"turn": self.turns, "context": self.conversation.digest}

        async def send(key: dict[str, Any], secrets: dict[str, Any] | None = None) -> Any:
            # litellm was not seen to change the messages it is given (OpenAI, Ollama,
            # streaming or not): the list is copied, not each message. Replay never gets here.
            return await agent.send(list(messages), secrets, key["turn"])

        call = task(send, name=agent.turn_task_name, **agent.call_options)
        turn: dict[str, Any] = await call(key)
        self.last = turn
        self.usage = self.usage + Usage.of(turn["usage"])
        cost = turn.get("cost")
        self.cost = None if self.cost is None or cost is None else self.cost + cost
        self.conversation.add(turn["message"])
        self.sent = len(messages)  # the reply is counted in the turn's usage already
        await publish(agent.name, "usage", turn=self.turns, usage=turn["usage"], cost=cost)
        return turn

    # -- tools ---------------------------------------------------------------------------------

    async def tool_results(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The tool messages answering ``calls``, in the order of the calls."""
        decisions = await self.ask_approvals(calls)
        limit = asyncio.Semaphore(self.agent.max_parallel_tools)

        async def one(call: dict[str, Any]) -> dict[str, Any]:
            async with limit:
                return await self.tool_call(call, decisions.get(call["id"]))

        return await parallel(*(one(c) for c in calls))

    async def ask_approvals(self, calls: list[dict[str, Any]]) -> dict[str, approvals.Decision]:
        """Ask for every call that needs approval at once: each is its own pause, so a resume
        answers them one by one; the run pauses while any waits."""
        agent = self.agent
        decisions: dict[str, approvals.Decision] = {}
        waiting: ExecutionPaused | None = None
        for call in calls:
            if call["function"]["name"] not in agent.approve:
                continue
            name = approvals.pause_name(call["id"])
            tool = call["function"]["name"]
            await publish(agent.name, "approval", call_id=call["id"], tool=tool, pause=name)
            try:
                answer = await pause(name, approvals.pause_data(agent.name, call))
            except ExecutionPaused as paused:
                waiting = waiting or paused
                continue
            decisions[call["id"]] = approvals.decision_of(answer)
        if waiting is not None:
            raise waiting
        return decisions

    async def tool_call(
        self, call: dict[str, Any], decision: approvals.Decision | None
    ) -> dict[str, Any]:
        fn = call["function"]
        name = fn["name"]
        message = {"role": "tool", "tool_call_id": call["id"], "name": name}
        tool = self.agent.tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self.agent.tools)) or "none"
            return {**message, "content": f"error: there is no tool {name!r}; the tools: {known}"}
        if decision is not None and not decision.approved:
            return {**message, "content": approvals.declined_text(decision)}
        try:
            if decision is not None and decision.arguments is not None:
                kwargs = tool.validate(_json(decision.arguments))
            else:
                kwargs = tool.validate(fn.get("arguments"))
        except ValueError as exc:
            return {**message, "content": f"error: invalid arguments for {name!r}: {exc}"}
        agent = self.agent.name
        await publish(agent, "tool_start", call_id=call["id"], tool=name, arguments=_view(kwargs))
        try:
            value = await tool.task(**kwargs)
        except NonDeterminismError:
            raise
        except Exception as exc:  # the model reads it and decides what to do next
            await publish(agent, "tool_end", call_id=call["id"], tool=name, ok=False)
            return {**message, "content": tool_error_text(exc)}
        await publish(agent, "tool_end", call_id=call["id"], tool=name, ok=True)
        return {**message, "content": tool_result_text(value)}


def _view(kwargs: dict[str, Any]) -> Any:
    from flux.serialization import to_view

    return to_view(kwargs)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
