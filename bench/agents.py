"""flux-agents: what the engine adds to an agent's turns, what replaying a long agent costs, and
what ``import flux_agents`` adds to ``import flux``.

    python -m bench agents

Every run is durable in the local SQLite store, as ``wf.run(...)`` does it, and the model
answers instantly:

- **per-turn overhead**: an agent of ``FLUX_BENCH_AGENT_TURNS`` (default 50) turns, each
  calling one tool, then answering; the model call (:func:`flux_agents._litellm.complete`)
  is replaced by a function that returns the next scripted turn at once, so the figure is
  the engine's part only: the turn's recorded task, the conversation's digest, the tool call
  and its task, the budget and progress checks, per turn. Beside it the same agent against
  the fake OpenAI-compatible server of the tests (litellm and HTTP on loopback included),
  total per turn, for scale;
- **replay**: the 50-turn agent with tools, finished, in an execution that then waits at a
  pause; the time of the resume (load the history, replay, finish). And the same 50 turns
  replayed one by one: the agent still in flight, waiting for the approval of its last
  tool call when the resume comes;
- **import**: ``from flux_agents import Agent`` after ``import flux`` in a fresh process
  (median of 7).

Each figure comes with the benchmark process's CPU time beside it: on a loaded machine the
wall-clock figures swell, the CPU ones much less.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import flux_agents._litellm as model_calls
from flux import ExecutionContext, task, workflow
from flux.config import Configuration
from flux.store import LocalStore
from flux.tasks import pause
from flux_agents import Agent

Figure = tuple[str, float, str, str]
TURNS = int(os.environ.get("FLUX_BENCH_AGENT_TURNS", "50"))
REPEATS = int(os.environ.get("FLUX_BENCH_REPEATS", "5"))


@task
async def lookup(n: int) -> str:
    """Look a number up."""
    return f"entry {n}"


@task
async def confirm(n: int) -> str:
    """Confirm the result."""
    return f"confirmed {n}"


def _turns(n: int, last_tool: str = "lookup") -> list[dict[str, Any]]:
    """``n`` scripted turns: a tool call each (``last_tool`` the last), then the answer."""
    usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    turns = []
    for i in range(n):
        tool = last_tool if i == n - 1 else "lookup"
        call = {"id": f"call_{i}", "type": "function",
                "function": {"name": tool, "arguments": json.dumps({"n": i})}}  # fmt: skip
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        turns.append({"message": message, "finish_reason": "tool_calls", "usage": usage,
                      "cost": None, "model": "fake"})  # fmt: skip
    answer = {"role": "assistant", "content": "done"}
    turns.append({"message": answer, "finish_reason": "stop", "usage": usage, "cost": None,
                  "model": "fake"})  # fmt: skip
    return turns


class _Instant:
    """Stands in for the model call: the next scripted turn, at once; counts its own time."""

    def __init__(self, turns: list[dict[str, Any]]) -> None:
        self.turns = turns
        self.next = 0
        self.seconds = 0.0

    async def __call__(self, call: Any) -> dict[str, Any]:
        start = time.perf_counter()
        turn = self.turns[self.next % len(self.turns)]
        self.next += 1
        self.seconds += time.perf_counter() - start
        return turn


agent = Agent("openai/fake", name="bench", tools=[lookup], max_turns=TURNS + 2, api_base="x")
careful = Agent("openai/fake", name="careful", tools=[lookup, confirm], approve=[confirm],
                max_turns=TURNS + 2, api_base="x")  # fmt: skip


@workflow
async def agent_run(ctx: ExecutionContext[str]) -> str:
    return (await agent.run(ctx.input)).output


@workflow
async def agent_then_pause(ctx: ExecutionContext[str]) -> str:
    output = (await agent.run(ctx.input)).output
    await pause("review")
    return output


@workflow
async def agent_in_flight(ctx: ExecutionContext[str]) -> str:
    return (await careful.run(ctx.input)).output


def _per_turn_engine() -> tuple[float, float]:
    """Median engine ms per turn, wall and CPU (the model stand-in's own time taken out)."""
    walls, cpus = [], []
    for _ in range(REPEATS):
        instant = _Instant(_turns(TURNS))
        model_calls.complete = instant  # type: ignore[assignment]  # the engine only
        start, cpu = time.perf_counter(), time.process_time()
        ctx = agent_run.run("go")
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert ctx.output == "done", ctx.output
        walls.append((wall - instant.seconds) / (TURNS + 1) * 1e3)
        cpus.append((cpu - instant.seconds) / (TURNS + 1) * 1e3)
    return statistics.median(walls), statistics.median(cpus)


def _per_turn_http() -> float:
    """Median ms per turn against the tests' fake OpenAI-compatible server (litellm, HTTP)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.agents.fake_provider import FakeProvider, Reply

    model_calls.complete = _REAL_COMPLETE  # type: ignore[assignment]
    figures = []
    with FakeProvider() as fake:
        remote = Agent("openai/fake", name="http", tools=[lookup], max_turns=TURNS + 2,
                       api_base=fake.openai_base, api_key_secret=None)  # fmt: skip

        @workflow
        async def http_run(ctx: ExecutionContext[str]) -> str:
            return (await remote.run(ctx.input)).output

        http_run.run("warm up")  # litellm's import and first call are not a turn's cost
        for _ in range(max(1, REPEATS // 2)):
            for i in range(TURNS):
                fake.add(Reply(text=None, tool_calls=[("lookup", {"n": i})]))
            fake.add(Reply(text="done"))
            start = time.perf_counter()
            http_run.run("go")
            figures.append((time.perf_counter() - start) / (TURNS + 1) * 1e3)
    return statistics.median(figures)


def _replay(flow: Any, answer: Any, last_tool: str = "lookup") -> tuple[float, float]:
    """Median ms of resuming a paused execution of ``flow`` (a new one each time). A resume
    after the agent finished asks the model nothing; one that answers the approval of the
    agent's last tool call asks for its final turn (instant, its time taken out)."""
    walls, cpus = [], []
    for _ in range(REPEATS):
        turns = _turns(TURNS, last_tool)
        model_calls.complete = _Instant(turns)  # type: ignore[assignment]
        paused = flow.run("go")
        assert paused.is_paused, paused.state
        LocalStore.close_all()  # the resume reads the history back, as another process would
        rest = _Instant([turns[-1]] if last_tool != "lookup" else [])
        model_calls.complete = rest  # type: ignore[assignment]
        start, cpu = time.perf_counter(), time.process_time()
        done = flow.run(answer, execution_id=paused.execution_id)
        walls.append((time.perf_counter() - start - rest.seconds) * 1e3)
        cpus.append((time.process_time() - cpu - rest.seconds) * 1e3)
        assert done.output == "done", done.output
        assert rest.next == (1 if last_tool != "lookup" else 0), rest.next
    return statistics.median(walls), statistics.median(cpus)


def _import_ms() -> tuple[float, float]:
    """Median ms (wall, CPU) of ``from flux_agents import Agent`` after ``import flux``."""
    code = (
        "import time; import flux; t, c = time.perf_counter(), time.process_time(); "
        "from flux_agents import Agent; "
        "print((time.perf_counter() - t) * 1e3, (time.process_time() - c) * 1e3)"
    )
    argv = [sys.executable, "-c", code]
    runs = [
        [float(x) for x in subprocess.run(argv, capture_output=True, text=True).stdout.split()]
        for _ in range(7)
    ]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


_REAL_COMPLETE = model_calls.complete


def main() -> list[Figure]:
    with tempfile.TemporaryDirectory() as home:
        os.environ["FLUX_HOME"] = home
        os.environ["FLUX_LOCAL_DATABASE"] = str(Path(home) / "flux.db")
        Configuration.get().reset()
        try:
            engine, engine_cpu = _per_turn_engine()
            finished, finished_cpu = _replay(agent_then_pause, "ok")
            in_flight, in_flight_cpu = _replay(agent_in_flight, True, last_tool="confirm")
            http = _per_turn_http()
        finally:
            model_calls.complete = _REAL_COMPLETE  # type: ignore[assignment]
            LocalStore.close_all()
    imported, imported_cpu = _import_ms()
    return [
        (f"agent turn, engine overhead ({TURNS} tool turns)", engine, "ms", "≤ 2 ms"),
        ("  the same, CPU", engine_cpu, "ms", ""),
        (f"agent turn against the fake HTTP provider, total ({TURNS} tool turns)", http, "ms",
         "—"),
        (f"resume after a finished {TURNS}-turn agent with tools", finished, "ms", "≤ 50 ms"),
        ("  the same, CPU", finished_cpu, "ms", ""),
        (f"resume replaying {TURNS} turns and tools one by one (agent in flight)", in_flight,
         "ms", "≤ 50 ms"),
        ("  the same, CPU", in_flight_cpu, "ms", ""),
        ("from flux_agents import Agent, after import flux (fresh process)", imported, "ms",
         "≤ 50 ms"),
        ("  the same, CPU", imported_cpu, "ms", ""),
    ]  # fmt: skip


if __name__ == "__main__":
    for figure in main():
        print(figure)
