"""Tool approval: a pause per call, named after the recorded call id and showing the tool and its
arguments; answered approved, edited or declined, by name, from this or another process."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flux import ExecutionContext, task, workflow
from flux.testing import MemoryStore, run
from flux_agents import Agent
from flux_agents.approvals import decision_of

from tests.agents.fake_provider import FakeProvider, Reply

sent: list[tuple[str, str]] = []


@task
async def send_email(to: str, body: str) -> str:
    """Send an email."""
    sent.append((to, body))
    return f"sent to {to}"


@task
async def lookup(name: str) -> str:
    """Find someone's address."""
    return f"{name.lower()}@example.com"


def test_each_call_pauses_on_its_own_and_is_answered_by_name(provider: FakeProvider) -> None:
    sent.clear()
    provider.add(
        Reply(
            text=None,
            tool_calls=[
                ("send_email", {"to": "ana@example.com", "body": "Hi"}),
                ("lookup", {"name": "Bo"}),
                ("send_email", {"to": "bo@example.com", "body": "Hey"}),
            ],
        ),
        Reply(text="One sent, one declined."),
    )
    mailer = Agent("openai/fake", name="mailer", tools=[send_email, lookup],
                   approve=[send_email], api_base=provider.openai_base)  # fmt: skip

    @workflow
    async def mail(ctx: ExecutionContext[str]):
        return (await mailer.run(ctx.input)).output

    store = MemoryStore()
    paused = run(mail, "Write to Ana and Bo", store=store)

    assert paused.is_paused
    assert [p.name for p in paused.pauses] == ["approve:call_1_0", "approve:call_1_2"]
    data = paused.pauses[0].data
    assert (data["agent"], data["tool"], data["call_id"]) == ("mailer", "send_email", "call_1_0")
    assert data["arguments"] == {"to": "ana@example.com", "body": "Hi"}
    assert sent == []  # nothing runs while an approval waits

    edit = {"approved": True, "arguments": {"to": "ana@example.com", "body": "Hello Ana"}}
    still = run(mail, edit, execution_id=paused.execution_id, store=store,
                pause="approve:call_1_0")  # fmt: skip
    assert [p.name for p in still.pauses] == ["approve:call_1_2"]
    assert len(provider.chat_requests()) == 1 and sent == []

    decline = {"approved": False, "reason": "Bo is on holiday"}
    done = run(mail, decline, execution_id=paused.execution_id, store=store)

    assert done.output == "One sent, one declined."
    assert sent == [("ana@example.com", "Hello Ana")]  # the edit, once; the declined never
    tools = [m for m in provider.chat_requests()[1].messages if m["role"] == "tool"]
    assert [m["content"] for m in tools] == [
        "sent to ana@example.com",
        "bo@example.com",
        "declined: a person did not approve this call: Bo is on holiday",
    ]


@pytest.mark.parametrize(
    ("answer", "approved", "arguments", "reason"),
    [
        (True, True, None, None),
        ("yes", True, None, None),
        ({"approved": True}, True, None, None),
        ({"approved": True, "arguments": {"x": 1}}, True, {"x": 1}, None),
        (False, False, None, None),
        ({"approved": False, "reason": "no"}, False, None, "no"),
        ("maybe", False, None, "the answer 'maybe' was not understood"),
        ({"approved": True, "arguments": [1]}, False, None,
         "the edited arguments [1] are not an object"),
        (None, False, None, "the answer None was not understood"),
    ],
)  # fmt: skip
def test_how_an_answer_reads(answer, approved, arguments, reason) -> None:
    decision = decision_of(answer)
    assert (decision.approved, decision.arguments, decision.reason) == (approved, arguments, reason)


FLOWS = '''
import os
from pathlib import Path

from flux import ExecutionContext, task, workflow
from flux_agents import Agent


@task
async def delete_file(path: str) -> str:
    """Delete a file."""
    with Path("deleted.txt").open("a") as log:
        log.write(path + "\\n")
    return f"deleted {path}"


janitor = Agent("openai/fake", name="janitor", tools=[delete_file], approve=["delete_file"])


@workflow
async def clean(ctx: ExecutionContext[str]):
    return (await janitor.run(ctx.input)).output
'''


def test_an_approval_answered_from_another_process(
    provider: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", provider.openai_base)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    (tmp_path / "cleanflows.py").write_text(FLOWS)
    monkeypatch.syspath_prepend(str(tmp_path))
    flows = importlib.import_module("cleanflows")
    provider.add(
        Reply(text=None, tool_calls=[("delete_file", {"path": "/tmp/old.log"})]),
        Reply(text="Deleted."),
    )

    paused = flows.clean.run("Clean up")
    assert paused.is_paused
    assert paused.pauses[0].data["arguments"] == {"path": "/tmp/old.log"}

    code = textwrap.dedent(f"""
        import cleanflows
        ctx = cleanflows.clean.run(True, execution_id={paused.execution_id!r})
        print(ctx.state.value, ctx.output)
    """)
    # `python -c` in tmp_path imports cleanflows from there; the environment is this one's
    resumed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )

    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "COMPLETED Deleted."
    assert (tmp_path / "deleted.txt").read_text() == "/tmp/old.log\n"
    assert len(provider.chat_requests()) == 2
    again = flows.clean.run(execution_id=paused.execution_id)  # finished: read, not run
    assert again.output == "Deleted." and len(provider.chat_requests()) == 2
