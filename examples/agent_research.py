"""A research assistant: an LLM agent with a tool, a reviewed answer and live progress, run
durably in this process.

    python examples/agent_research.py "What is durable execution?"

The model is ``FLUX_EXAMPLE_MODEL`` (default ``ollama_chat/llama3.1``, an Ollama on this
machine); any litellm model string works, with its API key in the usual variable
(``OPENAI_API_KEY``...). Stop the program at any point and run it again with the execution id
it printed: finished turns and tool calls are not repeated.
"""

from __future__ import annotations

import os
import sys

from flux import ExecutionContext, task, workflow
from flux_agents import Agent
from pydantic import BaseModel

NOTES = {
    "durable execution": "Each step is recorded; after a crash the run resumes from its log.",
    "replay": "A resumed run re-executes the body and returns recorded results for done steps.",
}


@task.with_options(retry_max_attempts=2)
async def look_up(topic: str) -> str:
    """Look a topic up in the team's notes (lowercase topic, e.g. "replay")."""
    return NOTES.get(topic.lower(), f"no notes on {topic!r}")


class Answer(BaseModel):
    summary: str
    sources: list[str]


researcher = Agent(
    os.environ.get("FLUX_EXAMPLE_MODEL", "ollama_chat/llama3.1"),
    name="researcher",
    system="Answer from the team's notes; look topics up before answering.",
    tools=[look_up],
    output_type=Answer,
    stream=True,
)


@workflow
async def research(ctx: ExecutionContext[str]) -> dict:
    result = await researcher.run(ctx.input)
    return {
        "answer": result.output.model_dump(),
        "turns": result.turns,
        "tokens": result.usage.total_tokens,
    }


def show(progress) -> None:
    value = progress.value
    if value["type"] == "tool_start":
        print(f"  calling {value['tool']}({value['arguments']})")
    elif value["type"] == "usage":
        print(f"  turn {value['turn']}: {value['usage']['total_tokens']} tokens")


if __name__ == "__main__":
    question = sys.argv[1] if len(sys.argv) > 1 else "What is durable execution?"
    ctx = research.run(question, on_progress=show)
    print(f"execution {ctx.execution_id}: {ctx.state.value}")
    print(ctx.output)
