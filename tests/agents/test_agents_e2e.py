"""Agents on a real server and worker processes, talking to the fake provider in this process:
a finished agent resumed sends nothing, and a worker killed between a tool and the next turn
costs exactly one more model request, the tool not run again."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flux.client import FluxClient
from flux.client import _calls as calls
from flux.protocol import TaskProgressFrame

from tests.agents.fake_provider import FakeProvider, Reply
from tests.support.cluster import FluxCluster, running_cluster, stop_process
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

WORKFLOWS = '''
from pathlib import Path

from flux import ExecutionContext, task, workflow
from flux.tasks import pause
from flux_agents import Agent, LongTermMemory


@task
async def lookup(term: str) -> str:
    """Look a term up."""
    with Path("tool-runs.txt").open("a") as runs:
        runs.write(term + "\\n")
    return f"{term}: found"


researcher = Agent("openai/fake", system="Research.", tools=[lookup], retry_delay=0.1)
talker = Agent("openai/fake", name="talker", stream=True)
keeper = Agent("openai/fake", name="keeper", long_term=LongTermMemory("user:42"))


@workflow
async def research(ctx: ExecutionContext[str]):
    result = await researcher.run(ctx.input)
    verdict = await pause("review", data={"answer": result.output, "turns": result.turns})
    return {"answer": result.output, "verdict": verdict}


@workflow
async def talk(ctx: ExecutionContext[str]):
    return (await talker.run(ctx.input)).output


@workflow
async def keep(ctx: ExecutionContext[str]):
    return (await keeper.run(ctx.input)).output
'''


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def cluster(tmp_path: Path, provider: FakeProvider) -> Iterator[FluxCluster]:
    # The address and key reach the worker's agents the standard way: the environment.
    env = {"OPENAI_BASE_URL": provider.openai_base, "OPENAI_API_KEY": "sk-fake"}
    with running_cluster(tmp_path, WORKFLOWS, **env) as running:
        yield running


def tool_runs(cluster: FluxCluster) -> list[str]:
    path = cluster.home / "tool-runs.txt"
    return path.read_text().splitlines() if path.exists() else []


def wait_state(client: FluxClient, execution_id: str, state: str):
    return wait_until(
        lambda: (s := client.status("research", execution_id)).state == state and s,
        what=f"execution {execution_id} to be {state}",
        timeout=90,  # a worker's first model call imports litellm: seconds on a busy machine
    )


def test_a_finished_agent_resumed_asks_the_model_nothing(
    cluster: FluxCluster, provider: FakeProvider
) -> None:
    provider.add(Reply(text=None, tool_calls=[("lookup", {"term": "flux"})]), Reply(text="Found."))
    with FluxClient(cluster.url) as client:
        started = client.run("research", "What is flux?")
        paused = wait_state(client, started.execution_id, "PAUSED")
        assert paused.pauses[0].data == {"answer": "Found.", "turns": 2}
        assert len(provider.chat_requests()) == 2

        client.resume("research", started.execution_id, "approved")
        done = wait_state(client, started.execution_id, "COMPLETED")

    assert done.output == {"answer": "Found.", "verdict": "approved"}
    assert len(provider.chat_requests()) == 2  # the resumed run replayed both turns
    assert tool_runs(cluster) == ["flux"]


def test_a_worker_killed_after_a_tool_costs_one_more_request(
    cluster: FluxCluster, provider: FakeProvider
) -> None:
    held = threading.Event()
    provider.add(
        Reply(text=None, tool_calls=[("lookup", {"term": "durable"})]),
        Reply(text="never delivered", hold=held),  # the worker dies while waiting for it
        Reply(text="Durable means it survives."),
    )
    with FluxClient(cluster.url) as client:
        started = client.run("research", "What is durable?")
        second = provider.wait_for_requests(2)[1]
        assert second.messages[-1]["content"] == "durable: found"  # the tool ran, then turn 2
        assert tool_runs(cluster) == ["durable"]

        stop_process(cluster.workers["w1"], signal.SIGKILL)
        held.set()
        cluster.start_worker("w2")
        paused = wait_state(client, started.execution_id, "PAUSED")

    assert paused.pauses[0].data == {"answer": "Durable means it survives.", "turns": 2}
    requests = provider.chat_requests()
    assert len(requests) == 3  # exactly one more: turn 2 again, turn 1 replayed
    assert requests[2].messages == second.messages
    assert tool_runs(cluster) == ["durable"]  # the tool did not run again


def test_streamed_tokens_reach_an_sse_client_before_the_end_and_are_not_recorded(
    cluster: FluxCluster, provider: FakeProvider
) -> None:
    answer = "Streaming works: " + "token " * 30
    started = threading.Event()
    provider.add(Reply(text=answer, hold=started))  # answers once the client has the stream
    frames: list[object] = []
    with FluxClient(cluster.url) as client:
        for frame in client.stream("talk", "Say something long", progress=True):
            frames.append(frame)
            if getattr(frame, "state", None) == "RUNNING":
                started.set()
        execution_id = frames[-1].execution_id
        events = client.status("talk", execution_id, detailed=True).events or []

    assert frames[-1].state == "COMPLETED" and frames[-1].output == answer
    progress = [f for f in frames if isinstance(f, TaskProgressFrame)]
    texts = [f.value["text"] for f in progress if f.value["type"] == "text"]
    assert "".join(texts) == answer
    assert progress[-1].value["type"] == "usage" and progress[-1].task == "talker"
    assert frames.index(progress[-1]) < len(frames) - 1  # before the execution ended
    assert not any("'type': 'text'" in str(e.model_dump()) for e in events)


def test_long_term_memory_is_the_servers_so_every_worker_sees_it(
    cluster: FluxCluster, provider: FakeProvider
) -> None:
    provider.add(
        Reply(text=None, tool_calls=[("remember_fact", {"key": "city", "fact": "Vigo"})]),
        Reply(text="Noted."),
        Reply(text=None, tool_calls=[("recall_facts", {})]),
        Reply(text="You live in Vigo."),
    )
    with FluxClient(cluster.url) as client:
        first = client.run("keep", "I live in Vigo.", mode="sync")
        assert first.output == "Noted."
        kept = client.send(calls.memory_items("user:42"))
        assert [(e.key, e.value) for e in kept.items] == [("city", "Vigo")]

        stop_process(cluster.workers["w1"])  # another worker answers the next execution
        cluster.start_worker("w2")
        second = client.run("keep", "Where do I live?", mode="sync")

    assert second.output == "You live in Vigo." and second.worker == "w2"
    assert provider.chat_requests()[3].messages[-1]["content"] == '{"city": "Vigo"}'
